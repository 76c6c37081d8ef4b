"""The demo shop's FAQ that ships with Xiaoer (a made-up down-jacket shop, written for the project).

It is imported only when asked: by the settings' *Import demo FAQ*, ``xiaoer knowledge import
--demo``, and the replay demo. A real shop's knowledge base never gets it on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.knowledge.base import ImportReport, KnowledgeBase, ProgressFn

DEMO_SOURCE = "demo-shop-faq"
"""The name the demo FAQ is imported under."""
_RESOURCE = "demo_shop_faq.md"


@contextmanager
def demo_faq_path() -> Iterator[Path]:
    """The demo FAQ as a file (inside the package, or a temporary copy in a zipped bundle)."""
    with resources.as_file(resources.files("app.resources").joinpath(_RESOURCE)) as path:
        yield Path(path)


def import_demo_faq(kb: KnowledgeBase, progress: ProgressFn | None = None) -> ImportReport:
    """Import (or refresh) the demo shop's FAQ as the source ``DEMO_SOURCE``."""
    with demo_faq_path() as path:
        return kb.import_file(path, "faq", DEMO_SOURCE, progress)
