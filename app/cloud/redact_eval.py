"""How well the privacy firewall does on a labelled set (``xiaoer redact --eval FILE``).

A labelled message is ``{"text": …, "pii": [personal strings as they appear in text], "shape": …}``;
``"pii": []`` marks a clean message. A personal string counts as removed only when every letter,
digit and Han character of it lies inside a replaced span: a phone number whose last four digits
stay behind, or an address whose room number stays behind (``[ADDRESS_1]301``), is a leak.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from app.cloud.redact import Redaction, redact_for_cloud


def leaked_part(text: str, value: str, redaction: Redaction) -> str:
    """The characters of ``value`` (each place it occurs in ``text``) that no entity covers;
    empty when the value is fully removed. A value not found in the text is all leaked."""
    spans = [(e.start, e.end) for e in redaction.entities]
    pos = text.find(value)
    if pos < 0:
        return value
    left = []
    while pos >= 0:
        for i in range(pos, pos + len(value)):
            if text[i].isalnum() and not any(s <= i < e for s, e in spans):
                left.append(text[i])
        pos = text.find(value, pos + 1)
    return "".join(left)


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall per shape, the strings that leaked, the share of clean messages left untouched and
    whether restore() gave every original back."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    leaked: list[dict[str, str]] = []
    clean = clean_untouched = restore_failures = 0
    changed_clean: list[str] = []
    for row in rows:
        text = row["text"]
        result = redact_for_cloud(text)
        if result.restore(result.redacted) != text:
            restore_failures += 1
        if not row["pii"]:
            clean += 1
            if result.redacted == text:
                clean_untouched += 1
            else:
                changed_clean.append(result.redacted)
            continue
        for value in row["pii"]:
            counts = found[row.get("shape", "?")]
            counts[1] += 1
            left = leaked_part(text, value, result)
            if left:
                leaked.append({"value": value, "left": left, "redacted": result.redacted})
            else:
                counts[0] += 1
    total = sum(n for _, n in found.values())
    removed = sum(k for k, _ in found.values())
    return {
        "messages": len(rows),
        "personal_strings": total,
        "recall": round(removed / total, 4) if total else None,
        "recall_by_shape": {k: round(v[0] / v[1], 4) for k, v in sorted(found.items())},
        "leaked": leaked,
        "clean_messages": clean,
        "clean_untouched": round(clean_untouched / clean, 4) if clean else None,
        "clean_changed": changed_clean,
        "restore_failures": restore_failures,
    }


def read_labelled(path: Path) -> list[dict[str, Any]]:
    """JSON lines; a line that is not an object with ``text`` (str) and ``pii`` (list) is an error
    naming its line number."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or not isinstance(row.get("pii"), list)
        ):
            raise ValueError(f'{path}:{number}: expected {{"text": str, "pii": [str, …]}}')
        rows.append(row)
    return rows
