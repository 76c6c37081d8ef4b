"""A reply that only repeats the customer's message back is no answer.

Matching models score a query against itself as a near-perfect match (e5: 0.998, a small in-domain
matcher: 0.900, against 0.62 / 0.56 for the agents' real replies on JDDC), so a draft that parrots
the customer would look strong and never be learned from. Training the in-domain matcher with the
echo as a negative fixed it there but cut its ranking skill (R10@1 0.377 → 0.217 on 300 held-out
JDDC contexts), so the scorer applies this rule instead, to every matcher: such a reply's
matching is 0.

On JDDC 2018 the rule fires on none of the 10,260 human agents' replies, on 6 of the base 0.5B's
drafts for 100 held-out contexts, and on 5 of 180 labels from the local 1.5B teacher.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

# JD's masked placeholders ([数字x], [ORDERID_10005629]), its emoticon codes (#E-s), punctuation
# and spaces carry no words of their own.
_NOISE = re.compile(r"\[[^\[\]\s]{1,40}\]|#E-[a-z]+|[\W_]+", re.UNICODE)
MIN_CHARS = 4
"""Shorter replies ("好的" to "好的") may repeat the customer and still be fine."""
COPIED_FROM_QUERY = 0.8
"""At least this share of the reply is copied from the customer's message…"""
QUERY_COVERED = 0.6
"""…and it covers at least this share of the message (picking one option of an either-or
question copies from it but covers little of it)."""
_MAX_CHARS = 300


def repeats_customer(query: str, reply: str) -> bool:
    """Whether ``reply`` is the customer's ``query`` sent back, give or take a few characters."""
    said = _NOISE.sub("", query[:_MAX_CHARS])
    answer = _NOISE.sub("", reply[:_MAX_CHARS])
    if len(answer) < MIN_CHARS or not said:
        return False
    blocks = SequenceMatcher(None, answer, said, autojunk=False).get_matching_blocks()
    copied = sum(b.size for b in blocks if b.size >= 2)
    return copied >= COPIED_FROM_QUERY * len(answer) and copied >= QUERY_COVERED * len(said)
