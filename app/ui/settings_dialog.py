"""The managers' settings: end model, teacher and API key (keyring only), scoring, evolution.

The pages are in app/ui/settings_pages.py; the dialog composes them, checks what they hold on
Save and keeps the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTabWidget, QVBoxLayout, QWidget

from app.cloud import providers
from app.errors import XiaoerError
from app.ui.settings import UiSettings
from app.ui.settings_pages import EndModelPage, PrivacyPage, ScoringPage, TeacherPage, WorkspacePage

if TYPE_CHECKING:
    from app.knowledge import KnowledgeBase
    from app.ui.knowledge_page import KnowledgePage
    from app.ui.local_teacher import LocalTeacher


class SettingsDialog(QDialog):
    """Edits a copy of the settings; ``result_settings`` holds them after Save."""

    def __init__(
        self,
        settings: UiSettings,
        teacher: providers.TeacherConfig | None = None,
        parent: QWidget | None = None,
        knowledge: Callable[[], KnowledgeBase] | None = None,
        knowledge_imported: Callable[[], None] | None = None,
        local_teacher: LocalTeacher | None = None,
    ) -> None:
        """``knowledge`` gives the app's knowledge base for the *Shop knowledge* page (no page
        without it); ``knowledge_imported`` is called after an import there. ``local_teacher``:
        the app's local teacher, started and stopped from the Teacher page."""
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle(self.tr("Settings"))
        self.resize(640, 520)
        self.original = settings
        self.result_settings: UiSettings | None = None
        self.result_teacher: providers.TeacherConfig | None = None
        self.teacher_changed = False
        if teacher is None:
            try:
                teacher = providers.load_config()
            except XiaoerError:
                teacher = providers.TeacherConfig()
        self.original_teacher = teacher

        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)
        self.error_label = QLabel("")
        self.error_label.setObjectName("settingsError")
        self.error_label.setStyleSheet("color: #c5221f")
        self.error_label.setWordWrap(True)

        self.end_model = EndModelPage(settings)
        self.tabs.addTab(self.end_model, self.tr("End model"))
        self.teacher = TeacherPage(teacher, local_teacher)
        self.tabs.addTab(self.teacher, self.tr("Teacher"))
        self.scoring = ScoringPage(settings)
        self.tabs.addTab(self.scoring, self.tr("Scoring && evolution"))
        self.workspace = WorkspacePage(settings)
        self.tabs.addTab(self.workspace, self.tr("Workspace"))
        self.knowledge_page: KnowledgePage | None = None
        if knowledge is not None:
            from app.ui.knowledge_page import KnowledgePage

            self.knowledge_page = KnowledgePage(knowledge, knowledge_imported)
            self.tabs.addTab(self.knowledge_page, self.tr("Shop knowledge"))
        self.privacy = PrivacyPage(self.error_label.setText)
        self.tabs.addTab(self.privacy, self.tr("Privacy"))

        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def build(self) -> tuple[UiSettings, providers.TeacherConfig]:
        """The settings as entered; raises XiaoerError naming what is wrong."""
        settings = replace(
            self.original,
            **self.end_model.values(),
            **self.scoring.values(),
            **self.workspace.values(),
        )
        return settings, self.teacher.config()

    def _knowledge_busy(self) -> bool:
        """A knowledge import or removal is running: closing must wait, not cut it off."""
        busy = self.knowledge_page is not None and self.knowledge_page.busy
        if busy:
            self.error_label.setText(self.tr("Wait until the knowledge import has finished."))
        return busy

    def done(self, result: int) -> None:
        if not self._knowledge_busy():
            self.privacy.redact_worker.shutdown(wait=False)  # a preview still running is dropped
            super().done(result)

    def accept(self) -> None:
        if self._knowledge_busy():
            return
        try:
            settings, teacher = self.build()
        except (XiaoerError, ValueError) as exc:
            self.error_label.setText(str(exc))
            return
        if not self.teacher.save_key():
            self.error_label.setText(self.teacher.key_status.text())
            return
        self.result_settings = settings
        self.result_teacher = teacher
        self.teacher_changed = asdict(teacher) != asdict(self.original_teacher)
        super().accept()
