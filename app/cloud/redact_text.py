"""The privacy firewall's view of a text: what a detector sees, and where each of its characters
came from in the text as typed.

Customers hide numbers without meaning to: full-width digits (１３９), ``＠``, zero-width spaces
pasted from a chat app, phone numbers read out in Chinese numerals (一三九…幺). Detectors run on a
normalised copy; every span they find maps back to the original characters, so a placeholder
replaces exactly what the customer typed (invisible characters inside the span included) and
``restore`` gives the original text back byte for byte.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


def _invisible_characters() -> str:
    """Format characters (zero-width space/joiners, bidi marks, BOM, soft hyphen, tags …) and the
    blank fillers and variation selectors that render as nothing."""
    chars = [chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) == "Cf"]
    chars += ["\u115f", "\u1160", "\u3164", "\uffa0", "\u034f", "\u180b", "\u180c", "\u180d"]
    chars += [chr(c) for c in range(0xFE00, 0xFE10)]  # variation selectors
    chars += [chr(c) for c in range(0xE0000, 0xE0080)]  # tag characters
    return "".join(sorted(set(chars)))


INVISIBLE = frozenset(_invisible_characters())
_INVISIBLE_RE = re.compile("[" + re.escape("".join(sorted(INVISIBLE))) + "]")

# Math alphanumerics (𝟏𝟑𝟖) and enclosed alphanumerics live outside the basic plane.
_ASTRAL_FOLDED = [(0x1D400, 0x1D800), (0x1F100, 0x1F200)]


def _fold_tables() -> tuple[dict[int, str], re.Pattern[str]]:
    """NFKC of every character that changes: the one-for-one foldings as a ``str.translate``
    table (fast, and offsets stay the same), and a pattern for the characters that change the
    length (dropped or expanded: ㈠, ½, ﬁ), which need the slow path with an offset map."""
    one: dict[int, str] = {}
    longer: list[str] = sorted(INVISIBLE)
    codes = [*range(0xA0, 0x10000)]
    for lo, hi in _ASTRAL_FOLDED:
        codes += range(lo, hi)
    for c in codes:
        ch = chr(c)
        folded = unicodedata.normalize("NFKC", ch)
        if folded == ch or ch in INVISIBLE:
            continue
        if len(folded) == 1:
            one[c] = folded
        else:
            longer.append(ch)
    return one, re.compile("[" + re.escape("".join(longer)) + "]")


_ONE_FOR_ONE, _CHANGES_LENGTH = _fold_tables()

# Chinese numerals read out digit by digit (幺 is how "1" is said in phone numbers; 两 is 2).
HAN_DIGITS = {
    "〇": "0",
    "零": "0",
    "一": "1",
    "幺": "1",
    "壹": "1",
    "二": "2",
    "两": "2",
    "贰": "2",
    "三": "3",
    "叁": "3",
    "四": "4",
    "肆": "4",
    "五": "5",
    "伍": "5",
    "六": "6",
    "陆": "6",
    "七": "7",
    "柒": "7",
    "八": "8",
    "捌": "8",
    "九": "9",
    "玖": "9",
}
_NUM = "[0-9" + "".join(HAN_DIGITS) + "]"
# Seven or more digits (Han or Arabic, a space or hyphen between groups): the length from which
# the firewall treats a digit string as possibly personal. "一五一十", "三三两两" stay words.
_HAN_NUMBER_RUN = re.compile(_NUM + r"(?:[ \-]?" + _NUM + "){6,}")
_HAS_HAN_DIGIT = re.compile("[" + "".join(HAN_DIGITS) + "]")
_HAN_DIGIT_TABLE = str.maketrans(HAN_DIGITS)


@dataclass(frozen=True)
class Normalised:
    """``text`` for the detectors; ``origin[i]`` is the index in ``original`` of ``text[i]``."""

    original: str
    text: str
    origin: list[int] | None  # None: text is original (the common case, no copy of the map)

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind ``text[start:end]`` (``end > start``)."""
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def normalise(original: str) -> Normalised:
    """NFKC per character (full-width digits and letters, ＠, ：), invisible characters dropped,
    Chinese-numeral digit strings turned into digits; lengths of the spans may change, the map
    keeps track."""
    text = original
    origin: list[int] | None = None
    if not text.isascii():
        if _CHANGES_LENGTH.search(text):
            text, origin = _nfkc_visible(original)
        else:
            text = text.translate(_ONE_FOR_ONE)
        if _HAS_HAN_DIGIT.search(text):
            # One character for one character: the map does not change.
            text = _HAN_NUMBER_RUN.sub(_han_digits_to_arabic, text)
    return Normalised(original, text, origin)


def _nfkc_visible(original: str) -> tuple[str, list[int]]:
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(original):
        if ch in INVISIBLE:
            continue
        if ch.isascii():
            out.append(ch)
            origin.append(i)
            continue
        folded = unicodedata.normalize("NFKC", ch)
        out.append(folded)
        origin.extend([i] * len(folded))
    return "".join(out), origin


def _han_digits_to_arabic(m: re.Match[str]) -> str:
    run = m.group(0)
    # At least three Han digits: "13722187520 四川省" keeps its 四.
    if len(_HAS_HAN_DIGIT.findall(run)) < 3:
        return run
    return run.translate(_HAN_DIGIT_TABLE)


def strip_invisible(text: str) -> str:
    """The text with invisible characters removed (used to compare values in tests and the eval)."""
    return _INVISIBLE_RE.sub("", text)
