"""Before Qt aborts with its generic "could not load the Qt platform plugin", the app says which
system libraries are missing and how to install them."""

from __future__ import annotations

import pytest

from app.ui import app as ui_app
from app.ui import platform_check
from app.ui.platform_check import missing_from_ldd, platform_hint

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd5b9e2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f2a1c000000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f2a1bf00000)
\tlibxcb-cursor.so.0 => not found
"""


def test_ldd_output_gives_the_missing_libraries_once_each() -> None:
    assert missing_from_ldd(LDD) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    assert missing_from_ldd("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_missing_xcb_libraries_name_the_packages_and_the_command() -> None:
    hint = platform_hint({"DISPLAY": ":0"}, "Linux", ["libxcb-cursor.so.0", "libxcb-icccm.so.4"])
    assert hint is not None
    assert "libxcb-cursor.so.0" in hint
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4" in hint


@pytest.mark.parametrize(
    ("env", "system", "missing", "expected"),
    [
        ({"DISPLAY": ":0"}, "Linux", [], None),  # all there
        ({"DISPLAY": ":0"}, "Linux", None, None),  # could not tell: let Qt try
        ({"DISPLAY": ":0"}, "Darwin", ["libxcb.so.1"], None),  # not Linux
        ({"QT_QPA_PLATFORM": "offscreen"}, "Linux", ["libxcb.so.1"], None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "Linux", ["libxcb.so.1"], None),
        ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}, "Linux", ["libxcb.so.1"], "libxcb1"),
        ({}, "Linux", [], "no display"),
    ],
)
def test_when_a_hint_is_given(
    env: dict[str, str], system: str, missing: list[str] | None, expected: str | None
) -> None:
    hint = platform_hint(env, system, missing)
    if expected is None:
        assert hint is None
    else:
        assert hint is not None and expected in hint


def test_the_app_prints_the_hint_and_stops_before_qt_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ui_app.QApplication, "instance", staticmethod(lambda: None))
    monkeypatch.setattr(platform_check, "missing_xcb_libraries", lambda: ["libxcb-cursor.so.0"])
    monkeypatch.setattr(ui_app, "application", lambda argv: pytest.fail("Qt was started"))
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(ui_app.platform, "system", lambda: "Linux")
    assert ui_app.run([]) == 1
    assert "apt-get install -y libxcb-cursor0" in capsys.readouterr().err
