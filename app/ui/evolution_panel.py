"""The managers' evolution panel: Evolve now and the warm start (child processes), gate result,
adapters, charts."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.charts import LineChart
from app.ui.evolution import (
    AdapterRow,
    activate_adapter,
    adapter_history,
    format_eta,
    rollback_target,
    team_mode,
)
from app.ui.evolve_run import EvolveRun
from app.ui.metrics import daily_metrics
from app.ui.services import Services

log = logging.getLogger(__name__)


class EvolutionPanel(QWidget):
    adapter_changed = Signal()
    """The active adapter changed (promotion, rollback): the model worker should load it."""
    run_finished = Signal(bool)
    """An evolution run ended; True when it succeeded."""

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("evolutionPanel")
        self.services = services
        self.run: EvolveRun | None = None
        self.last_gate: dict[str, Any] | None = None
        self._stopping = False
        layout = QVBoxLayout(self)

        box = QGroupBox(self.tr("Evolve now"))
        run_layout = QGridLayout(box)
        self.evolve_button = QPushButton(self.tr("Evolve now"))
        self.evolve_button.setObjectName("evolveButton")
        self.stop_button = QPushButton(self.tr("Stop"))
        self.stop_button.setEnabled(False)
        self.stage_label = QLabel(self.tr("idle"))
        self.stage_label.setObjectName("stageLabel")
        self.stage_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta_label = QLabel("")
        self.gate_label = QLabel("")
        self.gate_label.setObjectName("gateLabel")
        self.gate_label.setWordWrap(True)
        self.loss_chart = LineChart(self.tr("training loss"), "#d93025")
        self.loss_chart.setMinimumHeight(160)
        self.warm_button = QPushButton(self.tr("Warm start…"))
        self.warm_button.setObjectName("warmStartButton")
        self.warm_button.setToolTip(
            self.tr("Fine-tune the end model once on the shop's past dialogues (a warm start)")
        )
        self.warm_button.setVisible(not team_mode())  # there the shop's worker trains
        run_layout.addWidget(self.evolve_button, 0, 0)
        run_layout.addWidget(self.stop_button, 0, 1)
        run_layout.addWidget(self.stage_label, 0, 2)
        run_layout.addWidget(self.progress, 1, 0, 1, 2)
        run_layout.addWidget(self.eta_label, 1, 2)
        run_layout.addWidget(self.gate_label, 2, 0, 1, 3)
        run_layout.addWidget(self.warm_button, 3, 0)
        run_layout.addWidget(self.loss_chart, 0, 3, 4, 1)
        run_layout.setColumnStretch(3, 1)
        layout.addWidget(box)

        history = QGroupBox(self.tr("Adapters"))
        history_layout = QVBoxLayout(history)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("adapterTable")
        self.table.setHorizontalHeaderLabels(
            [
                self.tr("Version"),
                self.tr("Status"),
                self.tr("Created"),
                self.tr("Promoted"),
                self.tr("Metrics"),
            ]
        )
        self.table.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        buttons = QHBoxLayout()
        self.promote_button = QPushButton(self.tr("Promote selected"))
        self.rollback_button = QPushButton(self.tr("Roll back"))
        self.base_button = QPushButton(self.tr("Use base model"))
        self.refresh_button = QPushButton(self.tr("Refresh"))
        for b in (self.promote_button, self.rollback_button, self.base_button, self.refresh_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        history_layout.addWidget(self.table)
        history_layout.addLayout(buttons)
        layout.addWidget(history, 1)

        charts = QGroupBox(self.tr("Over time (per day)"))
        grid = QGridLayout(charts)
        self.charts: dict[str, LineChart] = {
            "mean_final": LineChart(self.tr("mean Final score"), "#1a73e8", (0.0, 1.0)),
            "thumbs_up_rate": LineChart(self.tr("thumbs-up rate"), "#188038", (0.0, 1.0)),
            "edit_rate": LineChart(self.tr("edit rate"), "#e37400", (0.0, 1.0)),
            "unedited_share": LineChart(self.tr("sent unedited"), "#9334e6", (0.0, 1.0)),
            "cloud_calls": LineChart(self.tr("cloud calls"), "#5f6368"),
            "cloud_cost": LineChart(self.tr("cloud cost"), "#c5221f"),
        }
        for i, chart in enumerate(self.charts.values()):
            grid.addWidget(chart, i // 3, i % 3)
        layout.addWidget(charts, 1)

        self.evolve_button.clicked.connect(self.evolve_now)
        self.warm_button.clicked.connect(self.warm_start)
        self.stop_button.clicked.connect(self.stop)
        self.promote_button.clicked.connect(self.promote_selected)
        self.rollback_button.clicked.connect(self.rollback)
        self.base_button.clicked.connect(lambda: self._activate(None))
        self.refresh_button.clicked.connect(self.refresh)
        self.history: list[AdapterRow] = []
        self.refresh()

    # --- the run -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    def evolve_now(self) -> None:
        if not self.running and self._can_train():
            self._start(self.services.context.evolve_command())

    def warm_start(self) -> None:
        """Ask for a history and budget (`WarmStartDialog`), then run it here like a round."""
        from app.ui.warm_start import choose_warm_start

        if not self.running and self._can_train():
            command = choose_warm_start(self, self.services.context.onboard_command)
            if command is not None:
                self._start(command)

    def _can_train(self) -> bool:
        # In team mode the shop's worker trains; this desktop only enqueues the round.
        missing = [] if team_mode() else self.services.context.missing_training()
        if missing:
            # The lite desktop bundle: a run would fail at the training step, so say how to train.
            log.warning("evolution needs %s, which this installation lacks", ", ".join(missing))
            self.stage_label.setText(
                self.tr(
                    "Training is not part of this installation (missing: {0}). Drafts, scoring, "
                    "the teacher and adapters work as usual. To train on this computer, install "
                    "the full Xiaoer bundle, or install from source with `make run`."
                ).format(", ".join(missing))
            )
        return not missing

    def _start(self, command: list[str]) -> None:
        self.loss_chart.clear()
        self.progress.setRange(0, 0)  # busy until the first step
        self.gate_label.setText("")
        self.eta_label.setText("")
        self.last_gate = None
        self._stopping = False
        self.stage_label.setText(self.tr("starting…"))
        self.run = EvolveRun(command, self)
        self.run.event_received.connect(self._on_event)
        self.run.finished.connect(self._on_finished)
        self.evolve_button.setEnabled(False)
        self.warm_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.run.start()

    def stop(self) -> None:
        if self.run is not None and self.run.running:
            self._stopping = True
            self.stage_label.setText(self.tr("stopping…"))
            self.run.stop()

    def stop_and_wait(self) -> None:
        if self.run is not None and self.run.running:
            self._stopping = True
            self.run.stop()
            self.run.wait()

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "stage":
            names = {
                "candidates": self.tr("choosing training examples"),
                "fetch_labels": self.tr("fetching teacher labels"),
                "anchors": self.tr("drafting anchor replies with the base model"),
                "train": self.tr("training"),
                "export": self.tr("exporting the adapter"),
                "gate": self.tr("gate: comparing with the active adapter"),
                "promote": self.tr("promoting"),
            }
            stage = str(event.get("stage", ""))
            self.stage_label.setText(names.get(stage, stage))
            if "total" in event:  # a stage with its own progress (the warm start's anchors)
                total = max(int(event.get("total", 0) or 0), 1)
                done = int(event.get("done", 0) or 0)
                self.progress.setRange(0, total)
                self.progress.setValue(min(done, total))
                self.eta_label.setText(
                    self.tr("{0}/{1} · ETA {2}").format(done, total, format_eta(event.get("eta_s")))
                )
        elif kind == "step":
            total = max(int(event.get("total", 0) or 0), 1)
            step = int(event.get("step", 0) or 0)
            self.progress.setRange(0, total)
            self.progress.setValue(min(step, total))
            loss = event.get("loss")
            if isinstance(loss, int | float):
                self.loss_chart.append(str(step), float(loss))
            self.eta_label.setText(
                self.tr("step {0}/{1} · loss {2} · ETA {3}").format(
                    step,
                    total,
                    f"{loss:.3f}" if isinstance(loss, int | float) else "–",
                    format_eta(event.get("eta_s")),
                )
            )
        elif kind == "gate":
            self.last_gate = event
            active = event.get("active_final")
            verdict = self.tr("promoted") if event.get("promoted") else self.tr("not promoted")
            self.gate_label.setText(
                self.tr("Candidate {0}: Final {1} vs active {2} — {3} ({4})").format(
                    event.get("version", "?"),
                    _fmt(event.get("candidate_final")),
                    _fmt(active) if active is not None else self.tr("base model"),
                    verdict,
                    event.get("reason", ""),
                )
            )
        elif kind == "done":
            self.stage_label.setText(
                self.tr("done: {0} promoted").format(event.get("version"))
                if event.get("promoted")
                else self.tr("done: nothing promoted")
            )
        elif kind == "candidates":
            self.gate_label.setText(
                self.tr("{0} drafts to learn from").format(event.get("count", 0))
            )
        elif kind == "warning":
            log.warning("evolution: %s", event.get("message"))
            self.eta_label.setText(str(event.get("message", "")))
        elif kind == "error":
            self.stage_label.setText(self.tr("failed"))
            self.services.report(self.tr("Evolution"), str(event.get("message", "")))

    def _on_finished(self, code: int, stderr_tail: str) -> None:
        run = self.run
        self.evolve_button.setEnabled(True)
        self.warm_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if code == 0 else 0)
        events = run.events if run is not None else []
        had_error = any(e.get("event") == "error" for e in events)
        if self._stopping:
            self.stage_label.setText(self.tr("stopped"))
        elif code != 0 and not had_error:
            self.stage_label.setText(self.tr("stopped"))
            detail = stderr_tail.strip().splitlines()[-3:] if stderr_tail.strip() else []
            if run is not None and run.killed:
                text = self.tr(
                    "The evolution process was killed, most likely out of memory. {0}"
                ).format(" ".join(detail))
            else:
                text = self.tr("The evolution process ended with code {0}. {1}").format(
                    code, " ".join(detail)
                )
            self.services.report(self.tr("Evolution"), text)
        promoted = any(e.get("event") == "done" and e.get("promoted") for e in events)
        self.refresh()
        if promoted:
            self.adapter_changed.emit()
        self.run_finished.emit(code == 0)

    # --- adapters and charts -------------------------------------------------------------------

    def refresh(self) -> None:
        try:
            self.history = adapter_history(self.services.store)
            days = daily_metrics(self.services.store)
        except Exception as exc:
            self.services.report(self.tr("Reading the evolution history"), exc)
            return
        fill_adapter_table(self.table, self.history)
        self.rollback_button.setEnabled(rollback_target(self.history) is not None)
        for name, chart in self.charts.items():
            chart.set_points([(d.day.strftime("%m-%d"), getattr(d, name)) for d in days])

    def selected_version(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.history[rows[0].row()].version

    def promote_selected(self) -> None:
        version = self.selected_version()
        if version is not None:
            self._activate(version)

    def rollback(self) -> None:
        target = rollback_target(self.history)
        if target is not None:
            self._activate(target)

    def _activate(self, version: str | None) -> None:
        try:
            activate_adapter(self.services.store, version)
        except Exception as exc:
            QMessageBox.warning(self, self.tr("Adapters"), str(exc))
            return
        self.refresh()
        self.adapter_changed.emit()


def fill_adapter_table(table: QTableWidget, history: list[AdapterRow]) -> None:
    """One row per adapter version: version, status, created, promoted, metrics."""
    table.setRowCount(len(history))
    for row, a in enumerate(history):
        metrics = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in a.metrics.items()
        )
        cells = [
            a.version,
            a.status,
            a.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            a.promoted_at.astimezone().strftime("%Y-%m-%d %H:%M") if a.promoted_at else "",
            metrics,
        ]
        for col, text in enumerate(cells):
            table.setItem(row, col, QTableWidgetItem(text))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"
