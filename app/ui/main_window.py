"""The main window: it lays out and connects the parts — the queue, the open chats, the inbox of
channels, the evolution page, the model's status, the local teacher's light, the actions — and
owns what is the window's own: the settings dialog, automatic evolution, the state and closing."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.cloud import providers
from app.ui.chats import Chats
from app.ui.evolution import should_evolve, sync_evolution_settings
from app.ui.evolution_panel import EvolutionPanel
from app.ui.inbox import Inbox
from app.ui.local_teacher import TeacherControl, local_teacher_chosen
from app.ui.model_status import ModelStatus
from app.ui.queue_panel import ErrorBanner, QueuePanel
from app.ui.services import AppContext, Services
from app.ui.settings import WindowState, save_settings, save_state
from app.ui.settings_dialog import SettingsDialog
from app.ui.shop_status import ShopStatus
from app.ui.shortcuts import HelpOverlay, WindowActions, shortcut_table

log = logging.getLogger(__name__)

AUTO_EVOLVE_CHECK_S = 60
"""How often automatic evolution asks whether a run is due."""


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext, state: WindowState | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle(self.tr("Xiaoer — customer service assistant"))
        self.resize(1200, 780)
        self.services = Services(context, self)
        self._closing = False
        self._force_close = False
        self._last_auto_check = 0.0

        central = QWidget()
        outer = QVBoxLayout(central)
        self.banner = ErrorBanner()
        outer.addWidget(self.banner)
        self.pages = QStackedWidget()
        outer.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.model = ModelStatus(self.services, self.statusBar(), self)
        self.queue = QueuePanel()
        self.chats = Chats(self.services, self.queue, lambda: self.model.model_ready, self)
        self.inbox = Inbox(self.services, self.chats, self)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.queue)
        split.addWidget(self.chats.centre)
        split.setSizes([300, 900])
        self.pages.addWidget(split)
        self.evolution = EvolutionPanel(self.services)
        self.pages.addWidget(self.evolution)
        self.overlay = HelpOverlay(shortcut_table(), central)
        self.teacher_control = TeacherControl(self.services.local_teacher)
        self.statusBar().addPermanentWidget(self.teacher_control)
        self.show_teacher_control()
        self.shop_status = ShopStatus(self.services)
        self.statusBar().addPermanentWidget(self.shop_status)
        self.window_actions = WindowActions(self)

        # What tests, the smoke test and the screenshots call on the window.
        self.tabs = self.chats.tabs
        self.model_status: QLabel = self.model.label
        self.ranker_status: QLabel = self.model.ranker_status
        self.ranker_bar: QProgressBar = self.model.ranker_bar
        self.receive = self.chats.receive
        self.open_conversation = self.chats.open_conversation
        self.current_view = self.chats.current_view
        self.close_view = self.chats.close_view
        self.export_to = self.chats.export_to
        self.new_customer = self.inbox.new_customer
        self.toggle_replay = self.inbox.toggle_replay
        self.start_replay = self.inbox.start_replay
        self.apply_adapter = self.model.apply_adapter
        self.new_customer_action = self.window_actions.new_customer
        self.replay_action = self.window_actions.replay
        self.evolution_action = self.window_actions.evolution

        self.services.error.connect(self.banner.show_message)
        self.model.ready.connect(self.chats.model_loaded)
        self.chats.opened.connect(self._show_workspace)
        self.chats.message.connect(self.statusBar().showMessage)
        self.inbox.message.connect(self.statusBar().showMessage)
        self.evolution.adapter_changed.connect(self.model.apply_adapter)
        self.services.shop_adapter_changed.connect(self.model.apply_adapter)  # team mode
        self.evolution.run_finished.connect(lambda ok: self.chats.refresh_queue())

        self.clock = QTimer(self)
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self.queue.refresh_view)
        self.clock.timeout.connect(self._auto_evolve_check)
        self.clock.start()

        self.chats.refresh_queue()
        self.chats.restore(state or WindowState())
        self.services.load_model()
        self.services.warm_suggestions()

    @property
    def model_ready(self) -> bool:
        return self.model.model_ready

    @property
    def provision_dialog(self) -> QProgressDialog | None:
        return self.model.provision_dialog

    def _show_workspace(self) -> None:
        self.pages.setCurrentIndex(0)
        self.evolution_action.setChecked(False)

    def toggle_evolution(self) -> None:
        show = self.pages.currentIndex() == 0
        self.pages.setCurrentIndex(1 if show else 0)
        self.evolution_action.setChecked(show)
        if show:
            self.evolution.refresh()

    # --- settings and automatic evolution ----------------------------------------------------

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(
            self.services.settings,
            parent=self,
            knowledge=self.services.knowledge,
            knowledge_imported=self.services.knowledge_imported,
            local_teacher=self.services.local_teacher,
        )
        if dialog.exec() and dialog.result_settings is not None:
            self.apply_settings_from(dialog)
        return dialog

    def apply_settings_from(self, dialog: SettingsDialog) -> None:
        settings, teacher = dialog.result_settings, dialog.result_teacher
        assert settings is not None and teacher is not None
        try:
            save_settings(settings)
            providers.save_config(teacher)
            sync_evolution_settings(
                settings.low_score_threshold,
                settings.evolve_policy,
                settings.evolve_min_labels,
                settings.past_dialogues,
                settings.shots,
            )
        except Exception as exc:
            self.services.report(self.tr("Saving the settings"), exc)
            return
        self.show_teacher_control()
        if self.services.apply_settings(settings, dialog.teacher_changed):
            self.model.reloading()

    def show_teacher_control(self) -> None:
        """The local teacher's light and Start button, while it is the chosen teacher."""
        chosen = local_teacher_chosen()
        self.teacher_control.setVisible(chosen)
        if chosen:
            self.services.local_teacher.refresh()

    def _auto_evolve_check(self) -> None:
        settings = self.services.settings
        now = time.monotonic()
        if settings.evolve_policy == "off" or now - self._last_auto_check < AUTO_EVOLVE_CHECK_S:
            return
        self._last_auto_check = now
        if self.evolution.running:
            return
        try:
            due = should_evolve(
                self.services.store, settings.evolve_policy, settings.evolve_min_labels
            )
        except Exception as exc:
            log.warning("automatic evolution check failed: %s", exc)
            return
        if due:
            log.info("automatic evolution (%s)", settings.evolve_policy)
            self.evolution.evolve_now()

    # --- state and closing -------------------------------------------------------------------

    def window_state(self) -> WindowState:
        return self.chats.state()

    def busy_reasons(self) -> list[str]:
        reasons = []
        if self.services.model.drafting:
            reasons.append(self.tr("a draft is being written"))
        if self.evolution.running:
            reasons.append(self.tr("training is running"))
        if self.services.ranker_training.busy:
            reasons.append(self.tr("the ranker is training"))
        return reasons

    def close_without_asking(self) -> None:
        """Ctrl-C or SIGTERM: stop drafting and training, save the state, close."""
        self._force_close = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:
            event.accept()
            return
        reasons = [] if self._force_close else self.busy_reasons()
        if reasons:
            answer = QMessageBox.question(
                self,
                self.tr("Quit Xiaoer?"),
                self.tr(
                    "Right now {0}. Stop it and quit? Everything rated and sent is saved."
                ).format(self.tr(" and ").join(reasons)),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._closing = True
        self.inbox.stop()
        self.clock.stop()
        try:
            save_state(self.window_state())
        except OSError as exc:
            log.warning("could not save the window state: %s", exc)
        self.evolution.stop_and_wait()
        self.services.shutdown()
        event.accept()
