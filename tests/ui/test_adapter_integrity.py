"""Issue #20 in the window: an active adapter whose files changed since export is not served (the
banner says so, the base model drafts); an evolution process the system kills is reported as the
out-of-memory kill it most likely is, with its last lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.evolve.promotion import sha256_of
from app.store import AdapterVersion, Store


def test_a_changed_active_adapter_is_refused_in_the_banner(
    qtbot, window, parts, store: Store, tmp_path: Path
) -> None:
    run = tmp_path / "v-tampered"
    run.mkdir()
    served = run / "adapter.gguf"
    served.write_bytes(b"the adapter as exported")
    with store.session() as session:
        session.add(
            AdapterVersion(
                version="v-tampered",
                method="lora",
                base_model="qwen2.5-0.5b",
                path=str(run),
                metrics={"sha256": sha256_of(served)},
                status="active",
            )
        )
    served.write_bytes(b"something else put in its place")
    window.apply_adapter()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    text = window.banner.label.text()
    assert "v-tampered" in text and "serving the base model" in text
    assert parts.backend.adapters == {}, "the changed file is never loaded"
    assert "adapter" not in window.model_status.text()


def test_the_status_shows_the_base_model_after_a_changed_adapter_replaced_a_good_one(
    qtbot, window, parts, store: Store, tmp_path: Path
) -> None:
    from app.evolve.loop import Evolution

    served = {}
    for version in ("v-good", "v-changed"):
        run = tmp_path / version
        run.mkdir()
        served[version] = run / "adapter.gguf"
        served[version].write_bytes(version.encode())
        with store.session() as session:
            session.add(
                AdapterVersion(
                    version=version,
                    method="lora",
                    base_model="qwen2.5-0.5b",
                    path=str(run),
                    metrics={"sha256": sha256_of(served[version])},
                )
            )
    Evolution(store).promote("v-good")
    window.apply_adapter()
    qtbot.waitUntil(lambda: "v-good" in window.model_status.text(), timeout=5000)
    Evolution(store).promote("v-changed")
    served["v-changed"].write_bytes(b"changed after the promotion")
    window.apply_adapter()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    assert "v-changed" in window.banner.label.text()
    qtbot.waitUntil(lambda: "adapter" not in window.model_status.text(), timeout=5000)
    assert parts.backend.active_adapter is None


@pytest.mark.skipif(os.name != "posix", reason="a child killed by SIGKILL")
def test_an_evolution_process_killed_by_the_system_says_out_of_memory(qtbot, window) -> None:
    from tests.ui.test_panels import fake_evolve

    window.services.context.evolve_command = lambda: fake_evolve("killed")
    with qtbot.waitSignal(window.evolution.run_finished, timeout=20000) as finished:
        window.evolution.evolve_now()
    assert finished.args == [False]
    text = window.banner.label.text()
    assert window.banner.isVisible() and "killed, most likely out of memory" in text
    assert "loading the gate's end model" in text, "its last stderr line"
