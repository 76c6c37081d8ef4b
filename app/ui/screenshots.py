"""``xiaoer screenshots DIR``: PNGs of the main states, grabbed from the real window.

The window runs on a throw-away data dir with the real end model; customers come from a JDDC 2019
replay file when one is given (else a few typed messages); one chat has a streamed, scored draft.
Offscreen by default; with ``QT_QPA_PLATFORM=xcb`` under an X server (``xvfb-run``) the PNGs are
what the X server shows, fonts and all. ``--language zh_CN`` takes the Chinese window (files
``*.zh_CN.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.ui.headless import headless_home, run_until

SAMPLE = ["你好，在吗？", "我昨天下的单，什么时候发货？", "可以选择顺丰快递吗？"]
SUGGEST_QUESTION = "你好，我昨天买的羽绒服能便宜点吗？什么时候发货"
DEMO_PAST = [
    # A few past dialogues of the made-up demo shop (written for the project, like its FAQ).
    (("羽绒服能便宜点吗",), "亲，价格是统一的哦，现在满99元包邮，还可以领店铺券[金额x]元。"),
    (("昨天买的什么时候发货",), "亲，下午四点前付款的订单当天就发出了，您的订单[订单x]今天发哦。"),
    (("能便宜一点吗 什么时候发", "亲，已经是活动价了哦"), "亲，付款后48小时内发货~"),
    (("还有优惠吗",), "亲，店铺首页可以领券，下单时会自动抵扣哦。"),
    (("发什么快递",), "亲，默认发中通和韵达，需要顺丰可以补10元运费差价。"),
]


def snap(widget: Any, path: Path) -> Path:
    """Save what the screen shows of ``widget`` (on an X server), else the widget's own render."""
    from PySide6.QtGui import QGuiApplication

    screen = widget.screen()
    if QGuiApplication.platformName() == "xcb" and screen is not None:
        screen.grabWindow(widget.winId()).save(str(path))
    else:
        widget.grab().save(str(path))
    return path


def take_screenshots(
    out: Path, model: str = "qwen2.5-0.5b", replay: str | None = None, language: str = "en"
) -> list[Path]:
    from app.store import open_store
    from app.ui.app import application
    from app.ui.channels import Incoming
    from app.ui.i18n import install_translator
    from app.ui.main_window import MainWindow
    from app.ui.services import AppContext
    from app.ui.settings import UiSettings
    from app.ui.settings_dialog import SettingsDialog

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with headless_home():
        app = application()
        install_translator(app, language)
        suffix = "" if language == "en" else f".{language}"
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
        written.append(snap(window, out / f"workspace{suffix}.png"))

        dialog = SettingsDialog(window.services.settings, parent=window)
        dialog.show()
        dialog.tabs.setCurrentIndex(1)
        dialog.teacher.provider.setCurrentText("gemini")  # the key field and the keyring state
        run_until(lambda: False, 0.3)
        written.append(snap(dialog, out / f"settings{suffix}.png"))
        dialog.close()

        written.append(suggestions_screenshot(window, out, suffix))

        window.toggle_evolution()
        run_until(lambda: False, 0.3)
        written.append(snap(window, out / f"evolution{suffix}.png"))

        window._closing = True
        window.close()
        app.processEvents()
        context.store.close()
    return written


def suggestions_screenshot(window: Any, out: Path, suffix: str = "") -> Path:
    """The demo shop's FAQ and past replies as candidates, the model's draft ranked in."""
    from app.knowledge import import_demo_faq
    from app.ui.channels import Incoming

    knowledge = window.services.knowledge()
    import_demo_faq(knowledge)
    knowledge.import_pairs("demo-past", DEMO_PAST)
    conversation_id = window.receive(Incoming("manual", "demo-s", "顾客S", SUGGEST_QUESTION))
    view = window.open_conversation(conversation_id) if conversation_id is not None else None
    if view is not None:
        run_until(lambda: any(c.source == "model" for c in view.candidates), 300)
        # Show a candidate with a placeholder to fill, as the agent would pick it (Alt+n).
        masked = [n for n, c in enumerate(view.candidates[:3], start=1) if c.masks]
        if masked:
            view.choose_candidate(masked[0])
    run_until(lambda: False, 0.3)
    return snap(window, out / f"suggestions{suffix}.png")
