"""The warm start dialog of the Evolution panel: which history to learn from, the token budget and
what it costs (pairs, passes, anchor replies, ETA from the speeds measured on this machine).

Checking runs ``xiaoer onboard --plan`` as a child process (reading and counting a large history
takes seconds); the panel then runs the warm start itself like a round, with its progress, Stop
and the gate. The same history and budget resume a stopped run from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.evolve.onboard import DEFAULT_BUDGET_TOKENS, estimate, plan_version
from app.knowledge.formats import FORMATS
from app.ui.evolution import (
    adapter_history,
    format_eta,
    history_sources,
    last_warm_start,
    remember_warm_start,
)
from app.ui.evolve_run import EvolveRun

PlanCommand = Callable[[str, str | None, int], list[str]]
OnboardCommand = Callable[..., list[str]]
HISTORY_FORMATS = tuple(f for f in FORMATS if f != "faq")


class WarmStartDialog(QDialog):
    """Accepted with ``corpus()``, ``fmt()`` and ``budget_tokens()`` set to a checked plan."""

    def __init__(
        self,
        plan_command: PlanCommand,
        sources: list[tuple[str, str, str]],
        last: dict[str, Any] | None = None,
        parent: QWidget | None = None,
        learned: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(parent)
        self.setObjectName("warmStartDialog")
        self.setWindowTitle(self.tr("Warm start from the shop's history"))
        self.plan_command = plan_command
        self.plan: dict[str, Any] | None = None
        self.learned = learned
        """Adapter versions in the store: a plan naming one was trained already."""
        self._checking: EvolveRun | None = None
        self._checked_for: tuple[str, str | None] = ("", None)
        layout = QVBoxLayout(self)
        intro = QLabel(
            self.tr(
                "Fine-tunes the end model once on the shop's past dialogues, in the background. "
                "The result is gated like any evolution round. Stop keeps a checkpoint: the same "
                "history and budget continue from it."
            )
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.source = QComboBox()
        self.source.setObjectName("warmStartSource")
        self.source.addItem(self.tr("Another file…"), None)
        for name, path, fmt in sources:
            self.source.addItem(name, (path, fmt))
        self.source.currentIndexChanged.connect(self._source_chosen)
        form.addRow(self.tr("Imported history"), self.source)
        self.corpus_edit = QLineEdit()
        self.corpus_edit.setObjectName("warmStartCorpus")
        self.corpus_edit.setPlaceholderText(self.tr("a history file, or a JDDC 2018 folder"))
        browse = QPushButton(self.tr("Browse…"))
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.corpus_edit, 1)
        row.addWidget(browse)
        form.addRow(self.tr("History"), row)
        self.format = QComboBox()
        self.format.setObjectName("warmStartFormat")
        self.format.addItem(self.tr("from the file name"), None)
        for fmt in HISTORY_FORMATS:
            self.format.addItem(fmt, fmt)
        form.addRow(self.tr("Format"), self.format)
        self.budget = QSpinBox()
        self.budget.setObjectName("warmStartBudget")
        self.budget.setRange(10, 10_000)
        self.budget.setSingleStep(50)
        self.budget.setSuffix(self.tr(" thousand tokens"))
        self.budget.setValue(DEFAULT_BUDGET_TOKENS // 1000)
        form.addRow(self.tr("Budget"), self.budget)
        layout.addLayout(form)
        self.check_button = QPushButton(self.tr("Check"))
        self.check_button.setObjectName("warmStartCheck")
        self.check_button.clicked.connect(self.check)
        self.info = QLabel(self.tr("Check the history to see what the budget buys."))
        self.info.setObjectName("warmStartInfo")
        self.info.setWordWrap(True)
        layout.addWidget(self.check_button)
        layout.addWidget(self.info)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.start_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.start_button.setText(self.tr("Start"))
        self.start_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        if last is not None:
            self.corpus_edit.setText(str(last.get("corpus", "")))
            self._set_format(last.get("format"))
            budget = last.get("budget_tokens")
            if isinstance(budget, int):
                self.budget.setValue(max(10, budget // 1000))
        elif sources:
            self.source.setCurrentIndex(1)
        self.corpus_edit.textChanged.connect(self._invalidate)
        self.format.currentIndexChanged.connect(self._invalidate)
        self.budget.valueChanged.connect(self._show_plan)

    # --- values ---------------------------------------------------------------------------------

    def corpus(self) -> str:
        return self.corpus_edit.text().strip()

    def fmt(self) -> str | None:
        value = self.format.currentData()
        return str(value) if value else None

    def budget_tokens(self) -> int:
        return self.budget.value() * 1000

    # --- the plan -------------------------------------------------------------------------------

    def check(self) -> None:
        """Run ``xiaoer onboard --plan`` for the chosen history; the answer arrives later."""
        if not self.corpus():
            self.info.setText(self.tr("Choose the history file first."))
            return
        self.plan = None
        self.start_button.setEnabled(False)
        self.check_button.setEnabled(False)
        self.info.setText(self.tr("Reading and counting the history…"))
        run = EvolveRun(self.plan_command(self.corpus(), self.fmt(), self.budget_tokens()), self)
        run.event_received.connect(self._planned)
        run.finished.connect(self._checked)
        self._checking = run
        self._checked_for = (self.corpus(), self.fmt())
        run.start()

    def _planned(self, event: dict[str, Any]) -> None:
        if event.get("event") == "plan":
            self.plan = event

    def _checked(self, code: int, stderr_tail: str) -> None:
        self.check_button.setEnabled(True)
        self._checking = None
        if self._checked_for != (self.corpus(), self.fmt()):  # changed while it was checked
            self._invalidate()
            return
        if code != 0 or self.plan is None:
            self.plan = None
            lines = [line for line in stderr_tail.splitlines() if line.strip()]
            reason = lines[-1] if lines else self.tr("exit code {0}").format(code)
            self.info.setText(self.tr("This history can't be used: {0}").format(reason))
            return
        self._show_plan()

    def _show_plan(self) -> None:
        if self.plan is None:
            return
        tokens, pairs = int(self.plan["history_tokens"]), int(self.plan["train_pairs"])
        sized = estimate(self.budget_tokens(), tokens, pairs)
        eta = (
            self.tr("about {0} on this computer").format(format_eta(sized.eta_s))
            if sized.eta_s is not None
            else self.tr("not known until a first warm start has run on this computer")
        )
        self.info.setText(
            self.tr(
                "{0} past dialogues to learn from ({1} tokens; {2} held back to judge the "
                "result). This budget reads the history {3:.2f} times, after the base model "
                "drafts {4} anchor replies. Time: {5}."
            ).format(
                pairs, tokens, self.plan.get("holdout_pairs", 0), sized.epochs, sized.anchors, eta
            )
        )
        version = plan_version(Path(self.corpus()), self.fmt(), self.budget_tokens())
        if version in self.learned:
            self.info.setText(
                self.tr(
                    "This history was already learned with this budget (version {0}): choose "
                    "another budget to train again."
                ).format(version)
            )
            self.start_button.setEnabled(False)
            return
        self.start_button.setEnabled(True)

    def _invalidate(self) -> None:
        self.plan = None
        self.start_button.setEnabled(False)
        self.info.setText(self.tr("Check the history to see what the budget buys."))

    def _source_chosen(self) -> None:
        data = self.source.currentData()
        if data is not None:
            path, fmt = data
            self.corpus_edit.setText(path)
            self._set_format(fmt)

    def _set_format(self, fmt: object) -> None:
        index = self.format.findData(fmt) if fmt else 0
        self.format.setCurrentIndex(max(index, 0))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            self.tr("The shop's past dialogues"),
            self.corpus(),
            self.tr("History files (*.csv *.jsonl *.txt *.enc);;All files (*)"),
        )
        if path:
            self.source.setCurrentIndex(0)
            self.corpus_edit.setText(path)

    def done(self, result: int) -> None:
        if self._checking is not None:
            self._checking.stop()
            self._checking.wait(3000)
        super().done(result)


def choose_warm_start(panel: Any, onboard_command: OnboardCommand) -> list[str] | None:
    """The warm start command the manager chose in the dialog (remembered, so that the next
    start offers it again: the same choice resumes a stopped run), or None when cancelled."""
    dialog = WarmStartDialog(
        lambda corpus, fmt, budget: onboard_command(corpus, fmt, budget, True),
        history_sources(panel.services.store),
        last_warm_start(),
        panel,
        frozenset(a.version for a in adapter_history(panel.services.store)),
    )
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    remember_warm_start(dialog.corpus(), dialog.fmt(), dialog.budget_tokens())
    return onboard_command(dialog.corpus(), dialog.fmt(), dialog.budget_tokens())
