"""The Alembic environment, run by ``app.store.migrate`` on a connection it has already opened.

The caller owns the connection and its transaction (so one failed revision rolls back the whole
upgrade) and turns foreign keys off for it (so SQLite table rebuilds in batch mode don't cascade
deletes); nothing here reads alembic.ini.
"""

from __future__ import annotations

from alembic import context

from app.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through app.store.migrate, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite can't ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
