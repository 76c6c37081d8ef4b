"""Shop-chat corpora as (context turns, agent reply) pairs, and the ECD response-selection format.

Readers for JDDC 2018 (`train.enc` / `train.dec`), JDDC 2019 (`chat.txt`-style sessions) and the
Taobao E-commerce Dialogue Corpus (ECD) layout, a writer for ECD, and a builder of a held-out
ECD-style test split from JDDC pairs (one true reply + random negatives per context, split by
conversation so no test context shares a conversation with a training pair).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ECD_GROUP_SIZE = 10
DEFAULT_MAX_TURN_CHARS = 256
DEFAULT_MAX_CONTEXT_TURNS = 10

# Agent greetings and order cards that open a JDDC session. JDDC 2018 lines carry no session id;
# a line whose first turns contain one of these starts a new (inferred) conversation.
JDDC2018_OPENERS = (
    "有什么问题我可以帮您处理或解决",
    "请问您是咨询之前的问题",
    "请问有什么可以帮",
    "咨询订单号",
    "订单编号",
)
_OPENER_TURNS = 4


@dataclass(frozen=True)
class DialoguePair:
    """One agent reply and the turns before it; `conversation` names the chat it came from."""

    context: tuple[str, ...]
    reply: str
    conversation: str

    def as_pair(self) -> tuple[list[str], str]:
        """The (context_turns, reply) shape the matcher trains on."""
        return list(self.context), self.reply


@dataclass(frozen=True)
class EcdGroup:
    """One ECD context with its candidate replies; `answer` is the index of the true reply."""

    context: tuple[str, ...]
    candidates: tuple[str, ...]
    answer: int

    def __post_init__(self) -> None:
        if not 0 <= self.answer < len(self.candidates):
            raise ValueError(f"answer {self.answer} is not a candidate index")

    @property
    def true_reply(self) -> str:
        return self.candidates[self.answer]


# --- text cleaning -----------------------------------------------------------------------------


def normalize_turn(text: str, max_chars: int = DEFAULT_MAX_TURN_CHARS) -> str:
    """Whitespace collapsed to single spaces, control characters dropped, cut to `max_chars`.

    JD's masked placeholders (`[数字x]`, `[ORDERID_10005629]`, ...) are ordinary text and stay.
    """
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in {"Cc", "Cs"}
    )
    text = " ".join(text.split())
    return text[:max_chars].rstrip() if max_chars > 0 else text


# --- JDDC 2018 -----------------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    # The corpora hold the odd invalid byte; a replacement char beats losing the line.
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


def read_jddc2018(
    enc_path: Path,
    dec_path: Path,
    max_turn_chars: int = DEFAULT_MAX_TURN_CHARS,
    max_context_turns: int = DEFAULT_MAX_CONTEXT_TURNS,
) -> Iterator[DialoguePair]:
    """Pairs from the JDDC 2018 baseline files (line i of enc: context, line i of dec: reply).

    Turns are split on ASCII commas (approximate: commas inside turns were not escaped). Lines
    carry no session id, so consecutive lines are grouped into inferred conversations that start
    at a line whose first turns hold a session opener (`JDDC2018_OPENERS`).
    """
    enc = _read_lines(enc_path)
    dec = _read_lines(dec_path)
    if len(enc) != len(dec):
        raise ValueError(f"{enc_path} has {len(enc)} lines but {dec_path} has {len(dec)}")
    conversation = -1
    for context_line, reply_line in zip(enc, dec, strict=True):
        raw_turns = [t for t in context_line.split(",") if t.strip()]
        if conversation < 0 or any(
            opener in turn for turn in raw_turns[:_OPENER_TURNS] for opener in JDDC2018_OPENERS
        ):
            conversation += 1
        turns = [normalize_turn(t, max_turn_chars) for t in raw_turns]
        turns = [t for t in turns if t][-max_context_turns:]
        reply = normalize_turn(reply_line.rstrip().rstrip(","), max_turn_chars)
        if not turns or not reply:
            continue
        yield DialoguePair(tuple(turns), reply, f"jddc2018:{conversation}")


# --- JDDC 2019 -----------------------------------------------------------------------------------

JDDC2019_COLUMNS = 7


def read_jddc2019(
    path: Path,
    max_context_turns: int = DEFAULT_MAX_CONTEXT_TURNS,
    max_turn_chars: int = DEFAULT_MAX_TURN_CHARS,
    bad_lines: list[str] | None = None,
) -> Iterator[DialoguePair]:
    """One pair per agent turn (waiter_send 1) that has earlier turns in its session.

    Columns: session id, user id, waiter_send (0 customer, 1 agent), is_transfer, is_repeat, sku,
    content. The context is the session's last `max_context_turns` turns before the reply.
    A malformed line raises ValueError naming it, or, when ``bad_lines`` is given, is left out
    and its message appended there.
    """
    sessions: dict[str, list[tuple[bool, str]]] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        problem = None
        if len(cols) != JDDC2019_COLUMNS:
            problem = (
                f"{path}:{line_no}: expected {JDDC2019_COLUMNS} tab-separated columns, "
                f"got {len(cols)}"
            )
        elif cols[2] not in {"0", "1"}:
            problem = f"{path}:{line_no}: waiter_send must be 0 or 1, got {cols[2]!r}"
        if problem is not None:
            if bad_lines is None:
                raise ValueError(problem)
            bad_lines.append(problem)
            continue
        session, _user, waiter_send, _transfer, _repeat, _sku, content = cols
        sessions.setdefault(session, []).append((waiter_send == "1", content))
    for session, turns in sessions.items():
        history: list[str] = []
        for is_agent, content in turns:
            text = normalize_turn(content, max_turn_chars)
            if not text or text == "NULL":
                continue
            if is_agent and history:
                yield DialoguePair(tuple(history[-max_context_turns:]), text, f"jddc2019:{session}")
            history.append(text)


def dedupe_pairs(pairs: Iterable[DialoguePair]) -> list[DialoguePair]:
    """Pairs in order, exact (context, reply) duplicates dropped (the first one is kept)."""
    seen: set[tuple[tuple[str, ...], str]] = set()
    out = []
    for pair in pairs:
        key = (pair.context, pair.reply)
        if key not in seen:
            seen.add(key)
            out.append(pair)
    return out


# --- ECD format ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\[[^\[\]\s]{1,40}\]"  # JD placeholders ([数字x], [ORDERID_10005629]) stay one token
    r"|[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]"  # CJK, kana, hangul, full-width
    r"|[A-Za-z0-9_]+"
    r"|\S",
    re.UNICODE,
)


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def tokenize(text: str) -> list[str]:
    """ECD tokens: one per CJK character, ASCII words whole, placeholders whole."""
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens joined back: a space only between two ASCII words (`hello world`), none for CJK."""
    out: list[str] = []
    for token in tokens:
        if out and _is_word_char(out[-1][-1]) and _is_word_char(token[0]):
            out.append(" ")
        out.append(token)
    return "".join(out)


def canonical_text(text: str) -> str:
    """What `text` reads back as after an ECD round trip (writer then reader)."""
    return detokenize(tokenize(text))


def _check_field(text: str, what: str) -> str:
    tokens = tokenize(text)
    if not tokens:
        raise ValueError(f"ECD cannot hold an empty {what}")
    return " ".join(tokens)


def write_ecd(groups: Iterable[EcdGroup], path: Path) -> int:
    """Writes groups in ECD layout (`label \\t turn_1 ... \\t turn_n \\t response`); returns the count.

    Every turn and candidate must hold at least one token (ECD has no empty fields).
    """
    lines: list[str] = []
    count = 0
    for group in groups:
        if not group.context:
            raise ValueError("ECD cannot hold a group with no context turns")
        context = "\t".join(_check_field(t, "context turn") for t in group.context)
        for index, candidate in enumerate(group.candidates):
            label = "1" if index == group.answer else "0"
            lines.append(f"{label}\t{context}\t{_check_field(candidate, 'candidate')}")
        count += 1
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return count


def _decode_ecd_line(raw: bytes, path: Path, line_no: int) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}:{line_no}: not UTF-8 text (byte {exc.start})") from exc
    bad = next((ch for ch in line if ch != "\t" and unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"{path}:{line_no}: control character {bad!r}; not an ECD text file")
    return line


def read_ecd(path: Path, group_size: int = ECD_GROUP_SIZE) -> list[EcdGroup]:
    """Reads an ECD response-selection file, validating it; errors name the offending line.

    Each line is `label \\t utterance_1 ... \\t utterance_n \\t response`, tokens space-separated;
    `group_size` consecutive lines share one context and exactly one of them has label 1.
    """
    raws = path.read_bytes().split(b"\n")
    if raws and raws[-1] == b"":
        raws.pop()
    if not raws:
        raise ValueError(f"{path}: empty file, no ECD groups")
    groups: list[EcdGroup] = []
    pending: list[tuple[int, tuple[str, ...], str, bool]] = []
    for line_no, raw in enumerate(raws, start=1):
        line = _decode_ecd_line(raw.rstrip(b"\r"), path, line_no)
        cols = line.split("\t")
        if len(cols) < 3:
            raise ValueError(
                f"{path}:{line_no}: expected label, at least one context turn and a response "
                f"(3+ tab-separated columns), got {len(cols)}"
            )
        label = cols[0].strip()
        if label not in {"0", "1"}:
            raise ValueError(f"{path}:{line_no}: label must be 0 or 1, got {label!r}")
        fields = [detokenize(c.split()) for c in cols[1:]]
        if any(not f for f in fields):
            raise ValueError(f"{path}:{line_no}: empty context turn or response")
        context, response = tuple(fields[:-1]), fields[-1]
        if pending and context != pending[0][1]:
            raise ValueError(
                f"{path}:{line_no}: context differs from line {pending[0][0]}; "
                f"groups must be {group_size} consecutive lines with one context"
            )
        pending.append((line_no, context, response, label == "1"))
        if len(pending) == group_size:
            groups.append(_close_group(pending, path))
            pending = []
    if pending:
        raise ValueError(
            f"{path}:{pending[0][0]}: incomplete group of {len(pending)} lines "
            f"(groups hold {group_size})"
        )
    return groups


def _close_group(pending: list[tuple[int, tuple[str, ...], str, bool]], path: Path) -> EcdGroup:
    positives = [i for i, (_, _, _, is_pos) in enumerate(pending) if is_pos]
    if len(positives) != 1:
        raise ValueError(
            f"{path}:{pending[0][0]}-{pending[-1][0]}: a group needs exactly one label 1, "
            f"found {len(positives)}"
        )
    return EcdGroup(pending[0][1], tuple(p[2] for p in pending), positives[0])


# --- held-out split --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutSplit:
    """Training pairs and ECD test groups drawn from disjoint conversations."""

    train: list[DialoguePair]
    test: list[EcdGroup]
    test_origins: list[str]  # the conversation each test group's context comes from
    test_conversations: frozenset[str]
    seed: int


def build_heldout_split(
    pairs: Sequence[DialoguePair],
    n_test: int = 1000,
    seed: int = 13,
    negatives: int = ECD_GROUP_SIZE - 1,
    block_size: int = 20,
) -> HeldOutSplit:
    """A deterministic held-out split in ECD shape: one true reply + `negatives` random ones.

    Conversations (in corpus order) are cut into blocks of `block_size`; whole blocks go to the
    test side until it has `n_test` usable contexts. Because JDDC 2018 conversation ids are
    inferred, the first conversation of each test block is used by neither side and the one
    right after a test block is kept out of training: a session the heuristic cut in two can't
    sit on both sides. Negatives are replies of other test-side conversations (random, as in
    ECD's test set), never equal to the true reply (after ECD canonicalisation) or to each other.
    Pairs are canonicalised (ECD round trip) and exact duplicates dropped first.
    """
    if n_test < 1 or negatives < 1 or block_size < 2:
        raise ValueError("n_test and negatives must be >= 1, block_size >= 2")
    cleaned = dedupe_pairs(
        DialoguePair(
            tuple(c for c in (canonical_text(t) for t in p.context) if c),
            canonical_text(p.reply),
            p.conversation,
        )
        for p in pairs
    )
    cleaned = [p for p in cleaned if p.context and p.reply]
    order: list[str] = []
    by_conv: dict[str, list[DialoguePair]] = {}
    for pair in cleaned:
        if pair.conversation not in by_conv:
            order.append(pair.conversation)
            by_conv[pair.conversation] = []
        by_conv[pair.conversation].append(pair)
    blocks = [order[i : i + block_size] for i in range(0, len(order), block_size)]
    rng = random.Random(seed)
    block_ids = list(range(len(blocks)))
    rng.shuffle(block_ids)

    test_convs: set[str] = set()
    excluded: set[str] = set()
    test_pairs = 0
    for b in block_ids:
        if test_pairs >= n_test * 1.5 and len(test_convs) > negatives:
            break
        block = blocks[b]
        excluded.add(block[0])
        if b + 1 < len(blocks):
            excluded.add(blocks[b + 1][0])
        for conv in block[1:]:
            test_convs.add(conv)
            test_pairs += len(by_conv[conv])
    if len(test_convs) <= negatives:
        raise ValueError("too few conversations for a held-out split with this many negatives")
    excluded -= test_convs
    train = [p for p in cleaned if p.conversation not in test_convs | excluded]

    test_side = [p for p in cleaned if p.conversation in test_convs]
    pool = sorted({(p.reply, p.conversation) for p in test_side})
    chosen = rng.sample(test_side, min(n_test, len(test_side)))
    groups: list[EcdGroup] = []
    origins: list[str] = []
    for pair in chosen:
        picked: list[str] = []
        seen = {pair.reply}
        for _ in range(200 * negatives):
            if len(picked) == negatives:
                break
            reply, conv = pool[rng.randrange(len(pool))]
            if conv != pair.conversation and reply not in seen:
                seen.add(reply)
                picked.append(reply)
        if len(picked) < negatives:
            continue
        groups.append(EcdGroup(pair.context, (pair.reply, *picked), 0))
        origins.append(pair.conversation)
    return HeldOutSplit(train, groups, origins, frozenset(test_convs), seed)
