"""Platform masks in past replies: filled from the conversation where it says the value, else
returned as spans for the agent to fill.

JD masked private data in its chats with placeholders such as ``[订单x]``, ``[数字x]``,
``[金额x]``, ``[日期x]``, ``[地址x]``, ``[姓名x]``, ``[电话x]`` and ``[ORDERID_10005629]``. A past
reply carrying one cannot be sent as it is. Only values that the customer's own conversation
states without doubt are filled in: an order number (a ``[ORDERID_…]`` token or a long digit
string next to 订单/单号) and a mobile number. Everything else stays masked and highlighted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MASK = re.compile(r"\[(?:[^\[\]\s]{1,12}x|ORDERID_\d+|USERID_\d+|[A-Z]+_\d+)\]|USERID_\d+")
"""JD's placeholders: ``[数字x]``-style, ``[ORDERID_…]`` and bare ``USERID_…``."""
_ORDER_MASK = re.compile(r"\[(?:订单x|订单号x|ORDERID_\d+)\]")
_PHONE_MASK = re.compile(r"\[(?:电话x|手机x|手机号x)\]")
_ORDER_IN_TEXT = re.compile(
    r"\[ORDERID_\d+\]|(?:订单|单号|订单号|订单编号)[^0-9\n]{0,6}(\d{9,14})(?!\d)"
)
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")


@dataclass(frozen=True)
class MaskSpan:
    """An unfilled placeholder in a suggestion's text: where it is and what it stands for."""

    start: int
    end: int
    label: str
    """The placeholder itself, e.g. ``[金额x]``."""


@dataclass(frozen=True)
class FilledText:
    text: str
    masks: tuple[MaskSpan, ...]
    """Placeholders left for the agent, as spans of ``text``."""
    filled: int
    """Placeholders replaced by a value from the conversation."""


def find_masks(text: str) -> tuple[MaskSpan, ...]:
    return tuple(MaskSpan(m.start(), m.end(), m.group()) for m in MASK.finditer(text))


def conversation_values(customer_turns: Sequence[str]) -> dict[str, str]:
    """The order number and phone number the customer gave, when exactly one of each appears
    (two different ones: we can't tell which is meant, so neither is used)."""
    orders: set[str] = set()
    phones: set[str] = set()
    for turn in customer_turns:
        for m in _ORDER_IN_TEXT.finditer(turn):
            orders.add(m.group(1) or m.group())
        phones.update(_PHONE_IN_TEXT.findall(turn))
    values = {}
    if len(orders) == 1:
        values["order"] = orders.pop()
    if len(phones) == 1:
        values["phone"] = phones.pop()
    return values


def fill_masks(text: str, values: dict[str, str]) -> FilledText:
    """``text`` with the masks that ``values`` (`conversation_values`) can fill replaced, and the
    spans of the rest."""
    if "[" not in text and "USERID_" not in text:  # the common case: nothing to do
        return FilledText(text, (), 0)
    return _fill(text, values.get("order"), values.get("phone"))


def _constant(value: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: value


@functools.lru_cache(maxsize=8192)  # the same stock replies come up turn after turn
def _fill(text: str, order: str | None, phone: str | None) -> FilledText:
    out, filled = text, 0
    for pattern, value in ((_ORDER_MASK, order), (_PHONE_MASK, phone)):
        if value is not None:
            # A function, not a template: the value is used as it is (no backslash escapes).
            out, count = pattern.subn(_constant(value), out)
            filled += count
    return FilledText(out, find_masks(out), filled)
