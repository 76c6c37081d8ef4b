"""The local store: one SQLite file in the data dir, migrated with Alembic on open.

Plain Python (no Qt). Typical use::

    store = open_store()
    with store.session() as session:  # one unit of work, committed at the end of the block
        message = store.add_message(session, conversation_id, "customer", text)
"""

from app.store.db import Store, default_path, open_store
from app.store.errors import StoreError
from app.store.models import (
    AdapterVersion,
    Base,
    Conversation,
    Customer,
    Draft,
    KnowledgeEntryRow,
    KnowledgeSourceRow,
    MatcherVersion,
    Message,
    OutboxItem,
    Rating,
    Score,
    SuggestionCandidate,
    SyncedRecord,
    TeacherReply,
    TrainingRun,
)

__all__ = [
    "AdapterVersion",
    "Base",
    "Conversation",
    "Customer",
    "Draft",
    "KnowledgeEntryRow",
    "KnowledgeSourceRow",
    "MatcherVersion",
    "Message",
    "OutboxItem",
    "Rating",
    "Score",
    "Store",
    "StoreError",
    "SuggestionCandidate",
    "SyncedRecord",
    "TeacherReply",
    "TrainingRun",
    "default_path",
    "open_store",
]
