"""The window's icons: SVG files inside the package (``app/ui/icons``), so they ship in the wheel
and the frozen bundle, and no widget depends on an emoji font being installed.

The SVGs are drawn with QtSvg into pixmaps (no image-format or icon-engine plugin needed).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

NAMES = ("thumbs-up", "thumbs-down", "clock", "close", "warning")
SIZES = (16, 20, 24, 32, 48)

# Emoji and pictographs that need an emoji (or symbol) font: Misc Technical (⏱ ⌛), Misc Symbols
# and Dingbats (⚠ ✕ ✓), Misc Symbols and Arrows (⭐), the emoji planes (👍), and the emoji
# presentation selector. Arrows, dashes, "·" and "…" are in every CJK font and stay text.
EMOJI = re.compile("[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff\ufe0f]")


def has_emoji(text: str) -> bool:
    return EMOJI.search(text) is not None


def svg_bytes(name: str) -> bytes:
    if name not in NAMES:
        raise KeyError(f"no icon {name!r}; known: {', '.join(NAMES)}")
    return resources.files("app.ui").joinpath("icons", f"{name}.svg").read_bytes()


def pixmap(name: str, size: int = 16) -> QPixmap:
    """The icon drawn at ``size`` × ``size`` logical pixels on a transparent background."""
    renderer = QSvgRenderer(QByteArray(svg_bytes(name)))
    if not renderer.isValid():
        raise ValueError(f"the icon {name}.svg is not valid SVG")
    image = QPixmap(QSize(size, size))
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


@cache
def icon(name: str) -> QIcon:
    """A QIcon of the named SVG, drawn at the sizes buttons and lists ask for."""
    result = QIcon()
    for size in SIZES:
        result.addPixmap(pixmap(name, size))
    return result


def dot(colour: str, size: int = 12) -> QPixmap:
    """A filled circle: the status light of a service (no "●" glyph, no font needed)."""
    image = QPixmap(QSize(size, size))
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor(colour).darker(130))
    painter.setBrush(QColor(colour))
    painter.drawEllipse(QRectF(1, 1, size - 2, size - 2))
    painter.end()
    return image


class IconLabel(QFrame):
    """A label with an icon before its text, e.g. the guard's warning: ``text()`` is the words
    alone, and the icon is an SVG, not a "⚠" that needs a symbol font."""

    def __init__(self, name: str, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(4)
        self.icon = QLabel()
        self.icon.setPixmap(pixmap(name, 16))
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.label = QLabel()
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)

    def setText(self, text: str) -> None:
        self.label.setText(text)

    def text(self) -> str:
        return self.label.text()

    def setWordWrap(self, on: bool) -> None:
        self.label.setWordWrap(on)

    def setBoxStyle(self, background: str, colour: str) -> None:
        self.setStyleSheet(
            f"#{self.objectName()} {{ border-radius: 4px; background: {background}; }} "
            f"QLabel {{ color: {colour}; font-weight: bold; background: transparent; }}"
        )
