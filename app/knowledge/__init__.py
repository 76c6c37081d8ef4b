"""The shop's knowledge: past dialogues and FAQ entries, imported from files, stored with the
sentence vectors of their questions, and searched by similarity (no Qt here).

Typical use::

    kb = KnowledgeBase(store)                 # the app's shared USE model, loaded on first use
    kb.import_file("faq.md")                  # or a JDDC corpus, JSON lines, a CSV file
    for hit in kb.search("什么时候发货", k=5):
        print(hit.similarity, hit.entry.answer)
"""

from app.knowledge.base import (
    ImportReport,
    KnowledgeBase,
    KnowledgeEntry,
    KnowledgeHit,
    SourceInfo,
)
from app.knowledge.demo import DEMO_SOURCE, demo_faq_path, import_demo_faq
from app.knowledge.formats import FORMATS, ImportFormat, KnowledgeError, format_of

__all__ = [
    "DEMO_SOURCE",
    "FORMATS",
    "ImportFormat",
    "ImportReport",
    "KnowledgeBase",
    "KnowledgeEntry",
    "KnowledgeError",
    "KnowledgeHit",
    "SourceInfo",
    "demo_faq_path",
    "format_of",
    "import_demo_faq",
]
