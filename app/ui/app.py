"""Starting the desktop app: logging, the QApplication, the language, the store, the window."""

from __future__ import annotations

import logging
import logging.handlers
import os
import platform
import signal
import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app import __version__, paths
from app.errors import XiaoerError
from app.store import open_store
from app.ui import platform_check
from app.ui.i18n import install_translator
from app.ui.main_window import MainWindow
from app.ui.services import AppContext
from app.ui.settings import UiSettings, load_settings, load_state

log = logging.getLogger("app.ui")


def setup_logging() -> None:
    folder = paths.logs_dir()
    handler = logging.handlers.RotatingFileHandler(
        folder / "ui.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("app")
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def application(argv: Sequence[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("Xiaoer")
    app.setOrganizationName("xiaoer")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(QIcon.fromTheme("mail-message-new"))
    return app


def build_window(settings: UiSettings | None = None) -> MainWindow:
    """The window on the user's data: settings, store and restored chats. Raises XiaoerError."""
    settings = settings or load_settings()
    store = open_store()
    return MainWindow(AppContext(store, settings), load_state())


def run(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    if QApplication.instance() is None:
        # Qt aborts the process when its platform plugin cannot load: say why first, and stop.
        hint = platform_check.check(os.environ, platform.system())
        if hint is not None:
            log.error("cannot open the window: %s", hint)
            print(hint, file=sys.stderr)
            return 1
    app = application(argv)
    try:
        settings = load_settings()
        settings_error = None
    except XiaoerError as exc:
        settings, settings_error = UiSettings(), str(exc)
    install_translator(app, settings.ui_language)
    try:
        window = build_window(settings)
    except XiaoerError as exc:
        log.error("could not start: %s", exc)
        QMessageBox.critical(
            None, QCoreApplication.translate("App", "Xiaoer cannot start"), str(exc)
        )
        return 1
    if settings_error:
        window.services.report(
            QCoreApplication.translate("App", "Settings"),
            settings_error + " " + QCoreApplication.translate("App", "Using the defaults."),
        )
    window.show()
    log.info("Xiaoer %s started (data dir %s)", __version__, paths.data_dir())
    _close_on_signals(window)
    return int(app.exec())


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl-C in the terminal, or SIGTERM, closes the window cleanly (state saved, work stopped).

    Python runs signal handlers only between bytecodes, so a timer hands it control regularly.
    """

    def handler(signum: int, frame: object) -> None:
        log.info("signal %s: closing", signum)
        QTimer.singleShot(0, window.close_without_asking)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    timer = QTimer(window)
    timer.setInterval(250)
    timer.timeout.connect(lambda: None)
    timer.start()
