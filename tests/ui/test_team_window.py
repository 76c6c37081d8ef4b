"""Team mode in the window: a rated and sent reply reaches the shop's PostgreSQL database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from app.store import Rating, Store, open_store
from app.store.db import DATABASE_URL_ENV
from app.ui.services import AppContext
from tests.ui.test_window import open_and_draft

# A real PostgreSQL server, started by the tests (tests/postgres.py).
pytest_plugins = ("tests.postgres",)


def shop_ratings(url: str) -> list[tuple[str, bool | None, str | None]]:
    with open_store(url) as shop, shop.session() as session:
        rows = session.scalars(select(Rating).order_by(Rating.rated_at))
        return [(r.uid, r.thumbs_up, r.sent_text) for r in rows]


def test_a_sent_reply_reaches_the_shops_database(
    qtbot: Any,
    context: AppContext,
    answer_quit: list[str],
    store: Store,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.ui.main_window import MainWindow

    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    window = MainWindow(context)
    qtbot.addWidget(window)
    statuses: list[tuple[str, int]] = []
    window.services.shop_status.connect(lambda state, n: statuses.append((state, n)))
    window.show()
    qtbot.waitUntil(lambda: window.model_ready or window.banner.isVisible(), timeout=10000)
    try:
        view = open_and_draft(qtbot, window, "能便宜点吗")
        view.panel.editor.setPlainText("亲，已经是最低价啦，送您一张优惠券。")
        qtbot.mouseClick(view.panel.up_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(view.panel.send_button, Qt.MouseButton.LeftButton)
        with store.session() as session:
            local = [(r.uid, r.thumbs_up, r.sent_text) for r in session.scalars(select(Rating))]
        assert local and local[-1][2] == "亲，已经是最低价啦，送您一张优惠券。"
        qtbot.waitUntil(lambda: shop_ratings(pg_url) == local, timeout=20000)
        qtbot.waitUntil(lambda: statuses[-1:] == [("online", 0)], timeout=20000)
        assert window.shop_status.isVisible()
        assert window.shop_status.text() == "Shop database: connected"
        window.shop_status.show_status("offline", 3)  # as the sync reports an outage
        assert "unreachable: 3 ratings" in window.shop_status.text()
    finally:
        window.close()


def test_solo_mode_has_no_shop_status(window: Any) -> None:
    assert window.services.shop_sync is None
    assert not window.shop_status.isVisible()


def test_a_manager_promotion_and_rollback_reach_the_running_window(
    qtbot: Any,
    context: AppContext,
    answer_quit: list[str],
    parts: Any,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.team import adapters, roles
    from app.ui.evolution import evolve_command
    from app.ui.main_window import MainWindow
    from tests.test_team_jobs import make_adapter

    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    assert evolve_command("py")[1:] == ["-m", "app", "team", "enqueue", "evolve", "--follow"]
    with open_store(pg_url) as shop:
        secret = roles.set_manager_secret(shop)
        make_adapter(shop, tmp_path / "worker", "v1")
        adapters.publish(shop, "v1")
        window = MainWindow(context)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.model_ready or window.banner.isVisible(), timeout=10000)
        try:
            adapters.promote(shop, "v1", secret)  # on a manager's desktop
            qtbot.waitUntil(lambda: parts.backend.active_adapter == "v1", timeout=30000)
            # the label follows the swap's signal, a moment after the backend has the adapter
            qtbot.waitUntil(lambda: "adapter v1" in window.model_status.text(), timeout=5000)
            adapters.rollback(shop, secret, "base")
            qtbot.waitUntil(lambda: parts.backend.active_adapter is None, timeout=30000)
        finally:
            window.close()
