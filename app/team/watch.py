"""Every desktop follows the shop's active adapter: ``AdapterWatcher``.

It listens on the shop's ``xiaoer_adapters`` channel (a promotion or rollback arrives at once)
and also polls every ``poll_s`` (30 s), so a missed notification, a reconnect or a server
without LISTEN still brings the change within a minute. On a change it fetches the published
files into the desktop's adapters folder, checks them against the recorded SHA-256, registers the
version in this desktop's own store as its active adapter (so drafts name it, and
``promotion.apply_active_adapter(model, local)`` hot-swaps it, checking the hash again), then calls
``on_change(version)``; None means the shop went back to the base model. A version whose files
don't match is refused: ``on_error`` gets the AdapterDamaged and the desktop keeps what it had.

Plain Python (no Qt): the window passes callbacks that post to its thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import exc as sa_exc

from app.evolve.promotion import AdapterDamaged
from app.evolve.versions import adapters_dir
from app.store import AdapterVersion, Store, open_store
from app.team import adapters

log = logging.getLogger(__name__)

POLL_S = 30.0
"""Polling beside LISTEN: a change reaches every desktop within this (+ the fetch)."""
_UNSET = object()


class AdapterWatcher:
    """Brings the shop's active adapter to this desktop; see the module's docstring."""

    def __init__(
        self,
        shop: Store | str,
        local: Store,
        on_change: Callable[[str | None], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        *,
        poll_s: float = POLL_S,
        root: Path | None = None,
    ) -> None:
        if local.is_server:
            raise ValueError("the desktop's own store is its SQLite file")
        self._shop = shop if isinstance(shop, Store) else None
        self._shop_url = shop if isinstance(shop, str) else None
        self.local = local
        self.on_change = on_change
        self.on_error = on_error
        self.poll_s = poll_s
        self.root = root if root is not None else adapters_dir() / "shop"
        self.applied: object = _UNSET
        """The version this desktop follows now (None: the base), once known."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def shop(self) -> Store:
        """The shop's store: given, or opened from its URL on first use (so a desktop starts
        while the server is away)."""
        if self._shop is None:
            assert self._shop_url is not None
            self._shop = open_store(self._shop_url)
        return self._shop

    def check(self) -> str | None:
        """Follow the shop's active adapter now; returns it (None: the base model). Raises
        AdapterDamaged for files that don't match (nothing changes here then)."""
        with self._lock:
            active = adapters.active_version(self.shop)
            version = active["version"] if active else None
            if version == self.applied:
                return version
            if version is None:
                with self.local.session() as session:
                    self.local.set_active_adapter(session, None)
            else:
                row, folder = adapters.fetch(self.shop, version, self.root)
                self._register(row, folder)
            self.applied = version
        log.info("shop adapter now %s", version or "the base model")
        if self.on_change is not None:
            self.on_change(version)
        return version

    def _register(self, shop_row: AdapterVersion, folder: Path) -> None:
        sha = shop_row.metrics["sha256"]
        with self.local.session() as session:
            row = self.local.get_adapter(session, shop_row.version)
            if row is None:
                row = self.local.add_adapter_version(
                    session,
                    version=shop_row.version,
                    method=shop_row.method,
                    base_model=shop_row.base_model,
                    path=str(folder),
                    metrics={"sha256": sha, "from_shop": True},
                    status="candidate",
                )
            elif row.metrics.get("sha256") != sha:
                raise AdapterDamaged(
                    f"Adapter {shop_row.version}: this desktop has a different adapter of that "
                    "name; the shop's is not used"
                )
            if row.status == "rejected":
                row.status = "retired"  # the shop's manager chose it
                session.flush()
            self.local.set_active_adapter(session, shop_row.version)

    # --- in the background ---------------------------------------------------------------

    def start(self) -> None:
        """Follow the shop in a daemon thread (LISTEN, and a check every ``poll_s``)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shop-adapter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._shop is not None and self._shop_url is not None:
            self._shop.close()  # opened here
            self._shop = None

    def _safe_check(self) -> None:
        try:
            self.check()
        except Exception as exc:  # damaged files, a server away: keep the current adapter
            log.warning("following the shop's adapter failed: %s", exc)
            if self.on_error is not None:
                self.on_error(exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._safe_check()
            if self._shop is None or not self._shop.is_server:  # unreachable, or SQLite
                self._stop.wait(self.poll_s)
                continue
            try:
                self._listen()
            except (psycopg.Error, sa_exc.DBAPIError) as exc:
                log.info("listening for adapter changes failed (%s); polling", exc)
                self._stop.wait(self.poll_s)

    def _listen(self) -> None:
        """Check on every notification, and every ``poll_s`` without one, until stopped."""
        # A connection of the shop's pool (its server options kept), out of transactions.
        with self.shop.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as sa_conn:
            conn = sa_conn.connection.driver_connection
            assert isinstance(conn, psycopg.Connection)
            conn.execute(f"LISTEN {adapters.CHANNEL}")
            try:
                self._safe_check()  # what changed while we were not listening
                waited = 0.0
                while not self._stop.is_set():
                    slice_s = min(1.0, self.poll_s)
                    heard = list(conn.notifies(timeout=slice_s, stop_after=1))
                    waited += slice_s
                    if heard or waited >= self.poll_s:
                        waited = 0.0
                        self._safe_check()
            finally:
                with contextlib.suppress(psycopg.Error):  # the connection may be gone
                    conn.execute(f"UNLISTEN {adapters.CHANNEL}")
