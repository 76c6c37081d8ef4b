"""``xiaoer gui --smoke``: open the real window offscreen, draft and score one reply, exit.

Checks an installation (the desktop bundle above all) end to end without a display: the store
opens (and migrates), the embedded model is assembled and verified on first start behind the
progress dialog, one customer message gets a draft through the model worker, the scorers score it.
It runs on the user's data dir (``XIAOER_HOME`` points it elsewhere) and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

SMOKE_MESSAGE = "可以选择快递吗？"


def run_smoke(text: str = SMOKE_MESSAGE, timeout_s: float = 900.0) -> int:
    """0 when a non-empty draft was written and scored; 1 with the reason on stderr otherwise."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.ui.app import application, build_window, setup_logging
    from app.ui.channels import Incoming
    from app.ui.headless import run_until
    from app.ui.settings import load_settings

    started = time.monotonic()
    setup_logging()
    app = application()
    # No teacher call for a weak draft: the smoke checks this installation, not a teacher.
    window = build_window(replace(load_settings(), label_weak_drafts=False))
    window.show()
    result: dict[str, object] = {"ok": False}
    try:
        run_until(lambda: window.model_ready or window.banner.isVisible(), timeout_s)
        if not window.model_ready:
            result["error"] = window.banner.label.text() or "the model did not load in time"
            return 1
        result["model_ready_s"] = round(time.monotonic() - started, 1)
        conversation_id = window.receive(Incoming("manual", "smoke", "smoke", text))
        view = window.open_conversation(conversation_id) if conversation_id is not None else None
        if view is None:
            result["error"] = "the customer's message did not open a chat"
            return 1
        # The draft's own errors (model, scoring) show in the banner: no need to wait them out.
        run_until(lambda: view.last_score is not None or window.banner.isVisible(), timeout_s)
        result["draft"] = view.panel.editor.toPlainText()
        if view.last_score is None:
            result["error"] = window.banner.label.text() or "no scored draft in time"
            return 1
        result["final"] = round(view.last_score.final, 3)
        result["ok"] = bool(str(result["draft"]).strip())
        return 0 if result["ok"] else 1
    finally:
        result["seconds"] = round(time.monotonic() - started, 1)
        print(
            json.dumps(result, ensure_ascii=False), file=sys.stdout if result["ok"] else sys.stderr
        )
        window.close_without_asking()
        app.processEvents()
