"""The UI language: Qt Linguist translations shipped inside the package (``app/ui/i18n``).

English is the source language; ``xiaoer_zh_CN.qm`` is built from ``xiaoer_zh_CN.ts`` with
``pyside6-lrelease`` (``python -m app.ui.i18n --build`` updates and builds it).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

LANGUAGES = ("zh_CN", "en")
_installed: list[QTranslator] = []


def resolve_language(setting: str, system: str | None = None) -> str:
    """``system`` follows the OS locale: Chinese locales get zh_CN, everything else English."""
    if setting in LANGUAGES:
        return setting
    name = system if system is not None else QLocale.system().name()
    return "zh_CN" if name.lower().startswith("zh") else "en"


def install_translator(app: QCoreApplication, setting: str = "system") -> str:
    """Install the translators for the chosen language; returns the language used."""
    for old in _installed:
        app.removeTranslator(old)
    _installed.clear()
    language = resolve_language(setting)
    if language == "en":
        return language
    ours = QTranslator(app)
    qm = resources.files("app.ui").joinpath("i18n", f"xiaoer_{language}.qm")
    with resources.as_file(qm) as path:
        if path.is_file() and ours.load(str(path)):
            app.installTranslator(ours)
            _installed.append(ours)
    qt = QTranslator(app)  # Qt's own strings: standard buttons, file dialogs
    if qt.load(f"qtbase_{language}", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        app.installTranslator(qt)
        _installed.append(qt)
    return language


def _tool(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def build(update: bool = True) -> None:
    """Refresh the .ts from the sources (lupdate) and compile the .qm (lrelease)."""
    here = Path(__file__).resolve().parent
    ts = here / "i18n" / "xiaoer_zh_CN.ts"
    if update:
        sources = sorted(str(p) for p in here.glob("*.py"))
        # Strings no longer in the sources are dropped, not kept as "vanished".
        subprocess.run(
            [_tool("pyside6-lupdate"), *sources, "-no-obsolete", "-ts", str(ts)], check=True
        )
    subprocess.run(
        [_tool("pyside6-lrelease"), str(ts), "-qm", str(ts.with_suffix(".qm"))], check=True
    )


if __name__ == "__main__":
    build(update="--no-update" not in sys.argv)
