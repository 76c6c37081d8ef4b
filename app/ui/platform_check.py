"""Before the QApplication: on Linux, will Qt's platform plugin load? If not, say which system
libraries are missing and the command that installs them, instead of Qt's generic abort
("Could not load the Qt platform plugin "xcb" … This application failed to start").

PySide6's wheels bring Qt itself but not the X11 client libraries its xcb plugin links to; a
desktop usually has most of them, `libxcb-cursor0` is the one most often missing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# The shared libraries Qt's xcb plugin needs, by the Debian/Ubuntu package that has each.
XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}


def missing_from_ldd(output: str) -> list[str]:
    """The libraries ``ldd`` reports as ``not found``, in its order, each once."""
    missing: list[str] = []
    for line in output.splitlines():
        name, _, where = line.strip().partition("=>")
        name = name.strip()
        if where.strip() == "not found" and name not in missing:
            missing.append(name)
    return missing


def platform_hint(env: Mapping[str, str], system: str, missing: Sequence[str] | None) -> str | None:
    """Why the window cannot open and what to do, or None when nothing is known to be wrong.

    ``missing``: the libraries the xcb plugin lacks (None: could not tell).
    """
    if system != "Linux":
        return None
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None  # offscreen, wayland, vnc …: not the xcb plugin
    if not platform and env.get("WAYLAND_DISPLAY"):
        return None  # Qt tries its Wayland plugin first
    if not env.get("DISPLAY"):
        return (
            "Xiaoer needs a desktop session: no display is set (DISPLAY and WAYLAND_DISPLAY are "
            "empty). Start it from the desktop, or over SSH with X forwarding (ssh -X); "
            "QT_QPA_PLATFORM=offscreen runs it without a screen (for tests)."
        )
    if not missing:
        return None
    packages = sorted({XCB_PACKAGES.get(lib, lib) for lib in missing})
    return (
        "Qt's xcb platform plugin cannot load: these system libraries are missing: "
        + ", ".join(missing)
        + ".\nOn Debian or Ubuntu install them with:\n    sudo apt-get install -y "
        + " ".join(packages)
        + "\n(other distributions: the packages that provide these files, e.g. xcb-util-cursor)."
    )


def xcb_plugin_files() -> list[Path]:
    """Qt's xcb platform plugin and the library behind it, inside the PySide6 package."""
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    candidates = [
        qt / "plugins" / "platforms" / "libqxcb.so",
        *sorted(qt.glob("lib/libQt6XcbQpa.so*")),
    ]
    return [p for p in candidates if p.is_file()]


def missing_xcb_libraries() -> list[str] | None:
    """What ``ldd`` says the xcb plugin lacks; None when that cannot be found out."""
    ldd = shutil.which("ldd")
    files = xcb_plugin_files()
    if ldd is None or not files:
        return None
    missing: list[str] = []
    for path in files:
        try:
            done = subprocess.run(
                [ldd, str(path)], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        missing += [lib for lib in missing_from_ldd(done.stdout) if lib not in missing]
    return missing


def check(env: Mapping[str, str], system: str) -> str | None:
    """``platform_hint`` for this machine (``ldd`` runs only where it matters)."""
    if platform_hint(env, system, ["?"]) is None:
        return None  # not the xcb plugin: nothing to look up
    return platform_hint(env, system, missing_xcb_libraries())
