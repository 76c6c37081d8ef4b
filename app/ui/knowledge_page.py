"""The settings' *Shop knowledge* page: the imported sources with their entry counts, Import…,
Import demo FAQ, and Remove. Imports and removals run on the page's own worker thread, with
progress; the page is a thin view over ``app.knowledge.KnowledgeBase``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.knowledge import FORMATS, ImportReport, KnowledgeBase, SourceInfo, import_demo_faq
from app.ui.workers import Runner


class KnowledgePage(QWidget):
    """Lists and changes the shop's knowledge; ``knowledge`` gives the app's shared knowledge
    base (read once as the page opens, then on its worker thread), ``imported`` is called on the
    UI thread after a successful import (the window trains the ranker then)."""

    _progress = Signal(int, int)
    """(entries embedded, entries to embed), from the worker thread."""
    changed = Signal()
    """An import or a removal finished (the list is up to date)."""

    def __init__(
        self,
        knowledge: Callable[[], KnowledgeBase],
        imported: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("knowledgePage")
        self._knowledge = knowledge
        self._imported = imported
        self.worker = Runner("knowledge", self)
        self.sources: list[SourceInfo] = []

        layout = QVBoxLayout(self)
        intro = QLabel(
            self.tr(
                "Past dialogues and FAQ answers the reply suggestions are drawn from. "
                "Importing a file again adds its new entries and removes those gone from it."
            )
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.table = QTableWidget(0, 4)
        self.table.setObjectName("knowledgeSources")
        self.table.setHorizontalHeaderLabels(
            [self.tr("Source"), self.tr("Kind"), self.tr("Format"), self.tr("Entries")]
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)

        row = QHBoxLayout()
        self.format = QComboBox()
        self.format.setObjectName("knowledgeFormat")
        self.format.addItem(self.tr("Format: from the file name"), None)
        for fmt in FORMATS:
            self.format.addItem(fmt, fmt)
        self.format.setToolTip(
            self.tr(
                "jddc2018: train.enc + train.dec; jddc2019: a chat file; jsonl: context and "
                "reply per line; csv: customer,agent or question,answer columns; faq: Markdown "
                "(## question, then the answer) or CSV"
            )
        )
        self.name = QLineEdit()
        self.name.setObjectName("knowledgeName")
        self.name.setPlaceholderText(self.tr("Name (default: the file's)"))
        self.import_button = QPushButton(self.tr("Import…"))
        self.import_button.setObjectName("knowledgeImport")
        self.import_button.clicked.connect(self.choose_and_import)
        self.demo_button = QPushButton(self.tr("Import demo FAQ"))
        self.demo_button.setObjectName("knowledgeDemo")
        self.demo_button.setToolTip(
            self.tr("A made-up down-jacket shop's FAQ that ships with Xiaoer, to try suggestions")
        )
        self.demo_button.clicked.connect(self.import_demo)
        self.remove_button = QPushButton(self.tr("Remove selected"))
        self.remove_button.setObjectName("knowledgeRemove")
        self.remove_button.clicked.connect(self.remove_selected)
        for widget in (self.format, self.name, self.import_button, self.demo_button):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.remove_button)
        layout.addLayout(row)

        self.progress = QProgressBar()
        self.progress.setObjectName("knowledgeProgress")
        self.progress.hide()
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setObjectName("knowledgeStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)

        self._progress.connect(self._show_progress)
        # The first listing is a quick query, read here rather than on the worker: a dialog
        # opened and closed at once must not be told to wait for an import.
        try:
            self._show_sources(self._knowledge().sources())
        except Exception as exc:
            self._failed(exc)

    @property
    def busy(self) -> bool:
        return self.worker.busy

    # --- actions ------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.worker.submit(lambda: self._knowledge().sources(), self._show_sources, self._failed)

    def choose_and_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            self.tr("Import shop knowledge"),
            "",
            self.tr("Knowledge files (*.md *.csv *.jsonl *.txt *.enc);;All files (*)"),
        )
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        fmt, name = self.format.currentData(), self.name.text().strip() or None

        def job() -> ImportReport:
            return self._knowledge().import_file(Path(path), fmt, name, self._progress.emit)

        self._start(self.tr("Importing {0}…").format(Path(path).name), job)

    def import_demo(self) -> None:
        self._start(
            self.tr("Importing the demo FAQ…"),
            lambda: import_demo_faq(self._knowledge(), self._progress.emit),
        )

    def remove_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.status.setText(self.tr("Select a source to remove."))
            return
        source = self.sources[rows[0].row()]
        answer = QMessageBox.question(
            self,
            self.tr("Remove knowledge"),
            self.tr("Remove {0} and its {1} entries?").format(source.name, source.entries),
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self._set_busy(True, self.tr("Removing {0}…").format(source.name))
        self.worker.submit(
            lambda: (source.name, self._knowledge().remove(source.name)),
            self._removed,
            self._failed,
        )

    # --- results (UI thread) ------------------------------------------------------------------

    def _start(self, text: str, job: Callable[[], ImportReport]) -> None:
        self._set_busy(True, text)
        self.worker.submit(job, self._import_done, self._failed)

    def _set_busy(self, busy: bool, text: str = "") -> None:
        for button in (self.import_button, self.demo_button, self.remove_button):
            button.setEnabled(not busy)
        self.progress.setVisible(busy)
        self.progress.setRange(0, 0)  # busy until the first count arrives
        if text:
            self.status.setText(text)

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _import_done(self, report: ImportReport) -> None:
        self._set_busy(False)
        text = self.tr("{0}: {1} entries read, {2} added, {3} removed, {4} unchanged.").format(
            report.source, report.read, report.added, report.removed, report.unchanged
        )
        if report.skipped:
            text += " " + self.tr("{0} unreadable lines skipped: {1}").format(
                report.skipped, "; ".join(report.problems)
            )
        self.status.setText(text)
        self.refresh()
        self.changed.emit()
        if self._imported is not None and report.added + report.removed:
            self._imported()

    def _removed(self, result: tuple[str, int]) -> None:
        self._set_busy(False)
        self.status.setText(self.tr("Removed {0} ({1} entries).").format(*result))
        self.refresh()
        self.changed.emit()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self.status.setText(self.tr("Failed: {0}").format(exc))

    def _show_sources(self, sources: list[SourceInfo]) -> None:
        self.sources = sources
        kinds = {"dialogue": self.tr("Past dialogues"), "faq": self.tr("FAQ")}
        self.table.setRowCount(len(sources))
        for row, source in enumerate(sources):
            cells: list[Any] = [source.name, kinds.get(source.kind, source.kind), source.format]
            for column, value in enumerate(cells):
                item = QTableWidgetItem(str(value))
                if column == 0 and source.path:
                    item.setToolTip(source.path)
                self.table.setItem(row, column, item)
            count = QTableWidgetItem(f"{source.entries:,}")
            count.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 3, count)
