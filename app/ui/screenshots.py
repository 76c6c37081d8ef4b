"""``xiaoer screenshots DIR``: PNGs of the main states, grabbed offscreen from the real window.

The window runs on a throw-away data dir with the real end model; customers come from a JDDC 2019
replay file when one is given (else a few typed messages); one chat has a streamed, scored draft.
"""

from __future__ import annotations

from pathlib import Path

from app.ui.bench_ui import headless_home, run_until

SAMPLE = ["你好，在吗？", "我昨天下的单，什么时候发货？", "可以选择顺丰快递吗？"]


def take_screenshots(
    out: Path, model: str = "qwen2.5-0.5b", replay: str | None = None
) -> list[Path]:
    from app.store import open_store
    from app.ui.app import application
    from app.ui.channels import Incoming
    from app.ui.main_window import MainWindow
    from app.ui.services import AppContext
    from app.ui.settings import UiSettings
    from app.ui.settings_dialog import SettingsDialog

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with headless_home():
        app = application()
        settings = UiSettings(model=model, max_tokens=96, label_weak_drafts=False)
        context = AppContext(open_store(), settings)
        window = MainWindow(context)
        window.resize(1280, 800)
        window.show()
        run_until(lambda: window.model_ready or window.banner.isVisible(), 600)
        if replay:
            channel = window.start_replay(Path(replay), interval_s=0.2)
            if channel is not None:
                run_until(lambda: len(window.queue.summaries) >= 4, 30)
                window.toggle_replay()  # stop here: four customers waiting
        else:
            for n, text in enumerate(SAMPLE):
                window.receive(Incoming("manual", f"demo-{n}", f"顾客{n + 1}", text))
        first = window.queue.visible_ids()[0]
        view = window.open_conversation(first)
        if view is not None:
            run_until(lambda: view.last_score is not None, 300)
        run_until(lambda: False, 0.3)
        path = out / "workspace.png"
        window.grab().save(str(path))
        written.append(path)

        dialog = SettingsDialog(window.services.settings, parent=window)
        dialog.show()
        dialog.tabs.setCurrentIndex(1)
        dialog.provider.setCurrentText("gemini")  # shows the key field and the keyring state
        run_until(lambda: False, 0.3)
        path = out / "settings.png"
        dialog.grab().save(str(path))
        written.append(path)
        dialog.close()

        window.toggle_evolution()
        run_until(lambda: False, 0.3)
        path = out / "evolution.png"
        window.grab().save(str(path))
        written.append(path)

        window._closing = True
        window.close()
        app.processEvents()
        context.store.close()
    return written
