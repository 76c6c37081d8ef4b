"""Icons are SVG resources in the package, not emoji: the window reads the same without an emoji
font (a shop's Linux desktop often has none, and 👍 then shows as an empty box)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QAbstractButton, QLabel, QListWidget, QTabWidget

from app.ui import icons
from app.ui.channels import Incoming


@pytest.mark.parametrize("name", icons.NAMES)
def test_every_icon_is_valid_svg_and_draws_something(qtbot: Any, name: str) -> None:
    image: QImage = icons.pixmap(name, 24).toImage()
    painted = sum(1 for x in range(24) for y in range(24) if image.pixelColor(x, y).alpha() > 0)
    assert painted > 20, f"{name}.svg draws (almost) nothing"
    assert not icons.icon(name).isNull()


def test_an_unknown_icon_is_an_error() -> None:
    with pytest.raises(KeyError):
        icons.svg_bytes("smiley")


@pytest.mark.parametrize(
    ("text", "emoji"),
    [
        ("👍", True),
        ("等待 ⏱ 1:02", True),
        ("⚠ 承诺", True),
        ("✕", True),
        ("好评", False),
        ("Final = α·similarity + (1−α)·match…", False),
        ("Settings → Shop knowledge", False),
    ],
)
def test_emoji_are_told_from_text(text: str, emoji: bool) -> None:
    assert icons.has_emoji(text) is emoji


def _texts(window: Any) -> list[str]:
    """Every text the window shows on a button, label, action, tab or queue row."""
    texts = []
    for button in window.findChildren(QAbstractButton):
        texts += [button.text(), button.toolTip()]
    for label in window.findChildren(QLabel):
        texts += [label.text(), label.toolTip()]
    for action in window.findChildren(QAction):
        texts += [action.text(), action.toolTip()]
    for tabs in window.findChildren(QTabWidget):
        texts += [tabs.tabText(i) for i in range(tabs.count())]
    for rows in window.findChildren(QListWidget):
        texts += [rows.item(i).text() for i in range(rows.count())]
    return texts


def test_the_rate_buttons_carry_icons_and_no_window_text_needs_an_emoji_font(
    qtbot: Any, window: Any
) -> None:
    conversation_id = window.receive(Incoming("manual", "buyer-1", "buyer-1", "在吗？"))
    view = window.open_conversation(conversation_id)
    qtbot.waitUntil(lambda: view.draft_id is not None)
    window.overlay.toggle()  # the shortcut help lists the rate keys too
    window.banner.show_message("Test", "a message")
    for button in (view.panel.up_button, view.panel.down_button):
        assert not button.icon().isNull()
        assert button.text() == ""
        assert button.toolTip() and button.accessibleName()
    assert not window.queue.list.item(0).icon().isNull()  # the waiting clock
    texts = _texts(window)
    assert any("buyer-1" in t for t in texts)  # the walk sees the window's texts
    assert [t for t in texts if icons.has_emoji(t)] == []
