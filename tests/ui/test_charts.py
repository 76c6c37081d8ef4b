"""The dashboard's charts: axes that make sense for counts, costs and rates; one day is a bar."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QColor

from app.ui.charts import LineChart, y_axis


@pytest.mark.parametrize(
    ("values", "fixed", "expected"),
    [
        ([0.0, 0.0], None, (0.0, 1.0)),  # no cost yet: 0 to 1, not -0.5 to 0.5
        ([0.0], None, (0.0, 1.0)),
        ([], None, (0.0, 1.0)),
        ([0.25], None, (0.0, 0.25)),  # one day's cost: from zero up to it
        ([3.0, 3.0], None, (0.0, 3.0)),
        ([1.0, 4.0, 2.0], None, (0.0, 4.0)),
        ([-1.0, 2.0], None, (-1.0, 2.0)),  # a negative value (a loss could be) stays in view
        ([0.4], (0.0, 1.0), (0.0, 1.0)),  # rates keep their fixed range
    ],
)
def test_the_y_axis_starts_at_zero_and_is_never_empty(
    values: list[float], fixed: tuple[float, float] | None, expected: tuple[float, float]
) -> None:
    assert y_axis(values, fixed) == expected


def _coloured_columns(chart: LineChart, colour: str) -> int:
    image = chart.grab().toImage()
    target = QColor(colour)
    columns = 0
    for x in range(image.width()):
        if any(image.pixelColor(x, y) == target for y in range(image.height())):
            columns += 1
    return columns


def test_a_single_day_is_a_bar_not_a_dot(qtbot: Any) -> None:
    chart = LineChart("cloud cost", "#c5221f")
    qtbot.addWidget(chart)
    chart.resize(300, 180)
    chart.set_points([("2026-12-07", 0.3)])
    bar = _coloured_columns(chart, "#c5221f")
    assert bar >= 20  # a bar tens of pixels wide (a dot was 5)
    chart.set_points([("2026-12-06", 0.1), ("2026-12-07", 0.3)])
    assert _coloured_columns(chart, "#c5221f") > 0  # two days: the line
