"""Draw the app icon (installer/xiaoer.png, 256×256) with Qt: a chat bubble with a check mark.

Geometry only, no font, so it draws the same on any machine: ``python installer/make_icon.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPen

SIZE = 256


def draw(path: Path) -> None:
    image = QImage(SIZE, SIZE, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    bubble = QPainterPath()
    bubble.addRoundedRect(QRectF(20, 28, 216, 164), 40, 40)
    tail = QPainterPath()
    tail.moveTo(QPointF(64, 180))
    tail.lineTo(QPointF(48, 236))
    tail.lineTo(QPointF(120, 184))
    tail.closeSubpath()
    p.fillPath(bubble.united(tail), QColor("#c5221f"))  # shop red
    pen = QPen(QColor("white"), 22, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    check = QPainterPath()
    check.moveTo(QPointF(78, 112))
    check.lineTo(QPointF(114, 146))
    check.lineTo(QPointF(180, 76))
    p.drawPath(check)
    p.end()
    if not image.save(str(path)):
        raise SystemExit(f"could not write {path}")


if __name__ == "__main__":
    app = QGuiApplication(sys.argv[:1])
    draw(Path(__file__).resolve().with_name("xiaoer.png"))
