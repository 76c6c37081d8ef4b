"""Issue #20: an active adapter whose files changed since export is not served; the window says
so in its banner and drafts with the base model."""

from __future__ import annotations

from pathlib import Path

from app.evolve.loop import sha256_of
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
