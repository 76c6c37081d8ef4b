"""The warm start from the Evolution panel: the dialog checks the history with a plan (a child
process standing in for `xiaoer onboard --plan`), shows what the budget buys, and the panel runs
the warm start like a round and remembers the choice so that it can be resumed."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from app.evolve import onboard
from app.store import Store
from app.store.models import KnowledgeSourceRow
from app.ui.evolution import history_sources, last_warm_start
from app.ui.warm_start import WarmStartDialog
from tests.ui.conftest import FIXTURES


def fake_onboard(corpus: str, fmt: str | None, budget: int, plan: bool = False) -> list[str]:
    command = [sys.executable, str(FIXTURES / "fake_onboard.py"), "--corpus", corpus]
    command += ["--budget-tokens", str(budget), "--jsonl"] + (["--format", fmt] if fmt else [])
    return command + (["--plan"] if plan else [])


def plan_of(corpus: str, fmt: str | None, budget: int) -> list[str]:
    return fake_onboard(corpus, fmt, budget, plan=True)


def add_history_source(store: Store, path: Path, name: str = "past chats") -> None:
    with store.session() as session:
        session.add(
            KnowledgeSourceRow(
                name=name, kind="dialogue", format="csv", path=str(path), encoder="use", entries=2
            )
        )


def test_the_dialog_offers_imported_history_checks_it_and_shows_what_the_budget_buys(
    qtbot, store: Store, tmp_path: Path
) -> None:
    history = tmp_path / "chats.csv"
    history.write_text("customer,agent\n在吗,在的亲\n", encoding="utf-8")
    add_history_source(store, history)
    add_history_source(store, tmp_path / "gone.csv", "moved away")  # no longer on disk
    assert history_sources(store) == [("past chats", str(history), "csv")]

    dialog = WarmStartDialog(plan_of, history_sources(store))
    qtbot.addWidget(dialog)
    assert dialog.corpus() == str(history) and dialog.fmt() == "csv"
    assert not dialog.start_button.isEnabled(), "nothing checked yet"
    qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=20000)
    text = dialog.info.text()
    sized = onboard.estimate(300_000, 800_000, 4000)
    assert "4000 past dialogues" in text and "800000 tokens" in text and "200 held back" in text
    assert f"{sized.epochs:.2f} times" in text and f"drafts {sized.anchors} anchor" in text
    assert "not known until a first warm start" in text, "no speed measured on this machine"

    onboard._save_speed(tok_s=100.0, s_per_anchor=1.0)
    dialog.budget.setValue(600)  # thousand tokens: recomputed at once, no new check needed
    bigger = onboard.estimate(600_000, 800_000, 4000)
    assert f"{bigger.epochs:.2f} times" in dialog.info.text() and bigger.epochs > sized.epochs
    assert bigger.eta_s == 6000 + bigger.anchors
    assert dialog.start_button.isEnabled() and "1:" in dialog.info.text()

    dialog.learned = frozenset({onboard.plan_version(history, "csv", 700_000)})
    dialog.budget.setValue(700)  # a version the store has: trained already
    assert "already learned" in dialog.info.text() and not dialog.start_button.isEnabled()
    dialog.budget.setValue(750)
    assert dialog.start_button.isEnabled() and "already" not in dialog.info.text()

    dialog.check()
    dialog.corpus_edit.setText(str(tmp_path / "other.csv"))  # changed while it is checked
    qtbot.waitUntil(dialog.check_button.isEnabled, timeout=20000)
    assert not dialog.start_button.isEnabled() and "Check the history" in dialog.info.text()

    dialog.corpus_edit.setText(str(tmp_path / "broken.csv"))
    assert not dialog.start_button.isEnabled(), "another file needs another check"
    dialog.check()
    qtbot.waitUntil(lambda: "can't be used" in dialog.info.text(), timeout=20000)
    assert "binary file" in dialog.info.text() and not dialog.start_button.isEnabled()


def test_the_panel_runs_the_warm_start_shows_its_progress_and_remembers_the_choice(
    qtbot, window, monkeypatch, tmp_path: Path
) -> None:
    history = tmp_path / "chats.csv"
    history.write_text("customer,agent\n在吗,在的亲\n", encoding="utf-8")
    window.services.context.onboard_command = fake_onboard

    def choose(dialog: WarmStartDialog) -> int:
        dialog.corpus_edit.setText(str(history))
        dialog.budget.setValue(150)
        dialog.check()
        qtbot.waitUntil(dialog.start_button.isEnabled, timeout=20000)
        dialog.accept()
        return int(QDialog.DialogCode.Accepted)

    monkeypatch.setattr(WarmStartDialog, "exec", choose)
    panel = window.evolution
    seen: list[tuple[int, int, str]] = []
    with qtbot.waitSignal(panel.run_finished, timeout=20000) as finished:
        panel.warm_start()
        panel.run.event_received.connect(
            lambda e: seen.append((panel.progress.value(), panel.progress.maximum(), e["event"]))
        )
    assert finished.args == [True]
    assert (2, 3, "stage") in seen, "the anchors' progress: 2 of 3 drafted"
    assert panel.loss_chart.values() == [2.5, 2.0, 1.5]
    assert "onboard-0123456789" in panel.gate_label.text()
    assert "nothing promoted" in panel.stage_label.text()
    assert last_warm_start() == {"corpus": str(history), "format": None, "budget_tokens": 150_000}

    def resume(dialog: WarmStartDialog) -> int:  # the next start offers the same choice
        assert (dialog.corpus(), dialog.budget_tokens()) == (str(history), 150_000)
        return int(QDialog.DialogCode.Rejected)

    monkeypatch.setattr(WarmStartDialog, "exec", resume)
    panel.warm_start()
    assert not panel.running
