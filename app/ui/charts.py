"""A small line chart drawn with QPainter (no QtCharts/matplotlib: the window stays light).

A series of one point (the first day of use) is drawn as a bar from zero, not a lone dot.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def y_axis(values: list[float], fixed: tuple[float, float] | None = None) -> tuple[float, float]:
    """The y axis's (low, high). Rates use the ``fixed`` range they are given; counts and costs
    start at zero (never below it unless a value is), and an all-zero series gets 0 to 1."""
    if fixed is not None:
        return fixed
    if not values:
        return 0.0, 1.0
    low, high = min(0.0, *values), max(0.0, *values)
    if high - low < 1e-9:
        return low, low + 1.0
    return low, high


class LineChart(QWidget):
    """One series of (label, value) points; None values are gaps. The y axis fits the data."""

    def __init__(
        self,
        title: str,
        colour: str = "#1a73e8",
        y_range: tuple[float, float] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.colour = QColor(colour)
        self.y_range = y_range
        self.points: list[tuple[str, float | None]] = []
        self.setMinimumSize(220, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_points(self, points: list[tuple[str, float | None]]) -> None:
        self.points = list(points)
        self.update()

    def append(self, label: str, value: float | None) -> None:
        self.points.append((label, value))
        self.update()

    def clear(self) -> None:
        self.points = []
        self.update()

    def values(self) -> list[float]:
        return [v for _, v in self.points if v is not None]

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(6, 6, -6, -6)
        painter.fillRect(self.rect(), self.palette().base())
        painter.setPen(self.palette().text().color())
        title_h = painter.fontMetrics().height() + 4
        values = self.values()
        latest = f"  {values[-1]:.3g}" if values else ""
        painter.drawText(rect.adjusted(0, 0, 0, -rect.height() + title_h), self.title + latest)
        plot = rect.adjusted(34, title_h + 4, -4, -16)
        grid = QPen(QColor("#dddddd"))
        painter.setPen(grid)
        painter.drawRect(plot)
        if not values:
            painter.setPen(QColor("#999999"))
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, self.tr("no data yet"))
            return
        low, high = y_axis(values, self.y_range)
        painter.setPen(QColor("#777777"))
        painter.drawText(QRectF(rect.left(), plot.top() - 6, 32, 14), f"{high:.2g}")
        painter.drawText(QRectF(rect.left(), plot.bottom() - 8, 32, 14), f"{low:.2g}")
        n = len(self.points)
        if n == 1:  # one day: its label under its bar
            painter.drawText(
                QRectF(plot.left(), plot.bottom() + 2, plot.width(), 14),
                Qt.AlignmentFlag.AlignHCenter,
                self.points[0][0],
            )
        elif n:
            painter.drawText(
                QRectF(plot.left(), plot.bottom() + 2, plot.width() / 2, 14), self.points[0][0]
            )
            painter.drawText(
                QRectF(plot.center().x(), plot.bottom() + 2, plot.width() / 2, 14),
                Qt.AlignmentFlag.AlignRight,
                self.points[-1][0],
            )

        def at(i: int, v: float) -> QPointF:
            x = plot.left() + (plot.width() * i / (n - 1) if n > 1 else plot.width() / 2)
            y = plot.bottom() - (v - low) / (high - low) * plot.height()
            return QPointF(x, y)

        if n == 1 and self.points[0][1] is not None:
            # One day: a bar from the axis's zero (or its floor) up to the value.
            value = self.points[0][1]
            base = at(0, min(max(0.0, low), high))
            top = at(0, value)
            width = min(40.0, plot.width() / 3)
            bar = QRectF(base.x() - width / 2, top.y(), width, base.y() - top.y()).normalized()
            if bar.height() < 2:  # a zero still shows where the bar stands
                bar.setTop(bar.bottom() - 2)
            painter.fillRect(bar, self.colour)
            return
        path = QPainterPath()
        started = False
        for i, (_, v) in enumerate(self.points):
            if v is None:
                started = False
                continue
            if started:
                path.lineTo(at(i, v))
            else:
                path.moveTo(at(i, v))
                started = True
        painter.setPen(QPen(self.colour, 2))
        painter.drawPath(path)
        if n <= 60:
            painter.setBrush(self.colour)
            for i, (_, v) in enumerate(self.points):
                if v is not None:
                    painter.drawEllipse(at(i, v), 2.5, 2.5)
