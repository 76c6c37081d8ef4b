"""Reading the shop's knowledge files into entries: past dialogues (context → agent reply) and FAQ
question → answer pairs.

Formats (``docs/knowledge.md`` has an example of each):

- ``jddc2018``: the JDDC 2018 ``train.enc`` / ``train.dec`` pair (the ``.enc`` file or its folder);
- ``jddc2019``: a JDDC 2019 chat file, every agent reply with the turns before it;
- ``jsonl``: one JSON object a line, ``{"context": [turns…], "reply": …}`` or ``{"query", "reply"}``;
- ``csv``: a header row naming ``customer`` and ``agent`` columns (past dialogues; an optional
  ``conversation`` column joins consecutive rows of one chat), or ``question`` and ``answer``
  (an FAQ);
- ``faq``: Markdown, each question a ``## `` heading (or a ``Q:`` / ``问：`` line) followed by its
  answer (or an ``A:`` / ``答：`` line); or a CSV file with ``question`` and ``answer`` columns.

The JDDC readers are the corpus readers of ``app.scoring.corpus``. A broken line is left out and
counted (the report names the first few); a file with nothing readable, an empty, binary or
non-UTF-8 file is refused with a ``KnowledgeError`` that says what is wrong.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from app.errors import XiaoerError
from app.evolve.data import REPLY_KEYS
from app.scoring import corpus
from app.scoring.corpus import DialoguePair, normalize_turn

ImportFormat = Literal["jddc2018", "jddc2019", "jsonl", "csv", "faq"]
FORMATS: tuple[str, ...] = get_args(ImportFormat)
EntryKind = Literal["dialogue", "faq"]

MAX_ANSWER_CHARS = 2000
"""An FAQ answer may be a paragraph; dialogue turns keep the corpus readers' 256 characters."""
MAX_PROBLEMS_SHOWN = 5
SNIFF_BYTES = 1 << 20
"""How much of a large corpus file is checked for being text before it is parsed."""


class KnowledgeError(XiaoerError):
    """A knowledge file that can't be imported; the message says why and what to do."""


@dataclass(frozen=True)
class ParsedEntry:
    kind: EntryKind
    context: tuple[str, ...]
    """The turns before the answer, customer first and alternating; an FAQ entry: (question,)."""
    answer: str
    conversation: str | None = None

    @property
    def query(self) -> str:
        return self.context[-1]

    @property
    def content_hash(self) -> str:
        """What makes an entry the same entry on the next import of its source."""
        key = json.dumps([self.kind, list(self.context), self.answer], ensure_ascii=False)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class ParseResult:
    entries: list[ParsedEntry]
    kind: EntryKind
    skipped: int = 0
    """Lines (or rows, blocks) left out because they could not be read."""
    problems: list[str] = field(default_factory=list)
    """What was wrong with the first few of them."""

    def skip(self, problem: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_SHOWN:
            self.problems.append(problem)


def format_of(path: Path) -> ImportFormat:
    """The format told by the path: a folder or ``.enc`` is JDDC 2018, ``.jsonl`` JSON lines,
    ``.md``/``.markdown`` an FAQ, ``.csv`` a CSV (dialogues or FAQ by its header), ``.txt``/``.tsv``
    a JDDC 2019 chat file."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".enc":
        return "jddc2018"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".md", ".markdown"):
        return "faq"
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".tsv"):
        return "jddc2019"
    raise KnowledgeError(
        f"Can't tell the format of {path.name} from its name: give it "
        f"(--format {'|'.join(FORMATS)})"
    )


def parse_file(path: Path, fmt: ImportFormat) -> ParseResult:
    """The entries of a knowledge file, with the lines that had to be left out counted."""
    if fmt not in FORMATS:
        raise KnowledgeError(f"Unknown knowledge format {fmt!r}; one of: {', '.join(FORMATS)}")
    if fmt == "jddc2018":
        return _parse_jddc2018(path)
    if not path.is_file():
        raise KnowledgeError(f"{path}: no such file")
    if fmt == "jddc2019":
        return _parse_jddc2019(path)
    lines, result = _text_lines(path)
    if fmt == "jsonl":
        _parse_jsonl(path, lines, result)
    elif fmt == "csv" or path.suffix.lower() == ".csv":
        _parse_csv(path, lines, result, faq_only=fmt == "faq")
    else:
        _parse_markdown_faq(path, lines, result)
    return _checked(path, fmt, result)


def parse_pairs(pairs: Iterable[DialoguePair | tuple[Sequence[str], str]]) -> ParseResult:
    """Dialogue entries from pairs in memory (``DialoguePair`` or ``(context_turns, reply)``)."""
    result = ParseResult([], "dialogue")
    for n, pair in enumerate(pairs, start=1):
        context: Sequence[str]
        if isinstance(pair, DialoguePair):
            context, reply, conversation = pair.context, pair.reply, pair.conversation
        else:
            (context, reply), conversation = pair, None
        entry = _dialogue(context, reply, conversation)
        if entry is None:
            result.skip(f"pair {n}: no customer message or no reply")
        else:
            result.entries.append(entry)
    return result


# --- checks -------------------------------------------------------------------------------------


def _check_text(path: Path, head: bytes) -> None:
    """Refuse what is not a text file, before any parser sees it."""
    if not head.strip():
        raise KnowledgeError(f"{path}: the file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise KnowledgeError(f"{path}: the file is UTF-16 text; save it as UTF-8 and import again")
    if b"\0" in head[:8192]:
        raise KnowledgeError(f"{path}: this is a binary file, not text (it holds NUL bytes)")
    sample = head[:65536]
    try:
        sample.decode("utf-8")
        return
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:  # a character cut at the sample's end
            return
        bad_at = exc.start
    # A few stray bytes are a damaged line (skipped later); most lines failing is an encoding.
    lines = sample.splitlines()[:-1] or sample.splitlines()
    failing = sum(1 for line in lines if not _is_utf8(line))
    if failing * 10 < len(lines):
        return
    hint = ""
    try:
        sample[: bad_at + 256].decode("gb18030")
        hint = " It looks like GBK/GB18030 (Chinese Windows): save it as UTF-8"
        hint += " (Excel: 'CSV UTF-8')." if path.suffix.lower() == ".csv" else "."
    except UnicodeDecodeError:
        pass
    raise KnowledgeError(
        f"{path}: not UTF-8 text ({failing} of the first {len(lines)} lines are not).{hint}"
    )


def _line_number(problem: str) -> int:
    found = re.search(r"\d+", problem)
    return int(found.group()) if found else 0


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _text_lines(path: Path) -> tuple[list[tuple[int, str]], ParseResult]:
    """(line number, text) of each UTF-8 line; a line that is not UTF-8 is counted as skipped."""
    raw = path.read_bytes()
    _check_text(path, raw[:SNIFF_BYTES])
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # Excel's UTF-8 mark
    result = ParseResult([], "dialogue")
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append((number, line.decode("utf-8")))
        except UnicodeDecodeError as exc:
            result.skip(f"line {number}: not UTF-8 (byte {exc.start + 1})")
    return lines, result


def _checked(path: Path, fmt: str, result: ParseResult) -> ParseResult:
    result.problems.sort(key=_line_number)  # lines that were not UTF-8 were noted first
    if not result.entries:
        detail = (
            f" ({result.skipped} left out: {'; '.join(result.problems)})" if result.skipped else ""
        )
        raise KnowledgeError(
            f"{path}: nothing readable as {fmt}{detail}. docs/knowledge.md shows the format."
        )
    return result


# --- dialogues ----------------------------------------------------------------------------------


def _dialogue(context: Sequence[str], reply: str, conversation: str | None) -> ParsedEntry | None:
    turns = tuple(t for t in (normalize_turn(str(t)) for t in context) if t)
    answer = normalize_turn(str(reply), MAX_ANSWER_CHARS)
    if not turns or not answer:
        return None
    return ParsedEntry("dialogue", turns[-corpus.DEFAULT_MAX_CONTEXT_TURNS :], answer, conversation)


def _parse_jddc2018(path: Path) -> ParseResult:
    enc = path / "train.enc" if path.is_dir() else path
    dec = enc.with_suffix(".dec")
    for part in (enc, dec):
        if not part.is_file():
            raise KnowledgeError(
                f"{part}: no such file (JDDC 2018 needs train.enc and train.dec side by side)"
            )
        with part.open("rb") as fh:
            _check_text(part, fh.read(SNIFF_BYTES))
    try:
        pairs = list(corpus.read_jddc2018(enc, dec))
    except ValueError as exc:  # the two files' lines don't pair up
        raise KnowledgeError(str(exc)) from exc
    return _checked(path, "jddc2018", parse_pairs(pairs))


def _parse_jddc2019(path: Path) -> ParseResult:
    with path.open("rb") as fh:
        _check_text(path, fh.read(SNIFF_BYTES))
    bad: list[str] = []
    result = parse_pairs(corpus.read_jddc2019(path, bad_lines=bad))
    for problem in bad:  # "PATH:LINE: what" from the corpus reader
        result.skip("line " + problem.removeprefix(f"{path}:"))
    return _checked(path, "jddc2019", result)


def _parse_jsonl(path: Path, lines: list[tuple[int, str]], result: ParseResult) -> None:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError("not a JSON object")
            context = record.get("context") or [record["query"]]
            if isinstance(context, str):
                context = [context]
            if not isinstance(context, list) or not all(isinstance(t, str) for t in context):
                raise TypeError("context turns must be strings")
            reply = next(
                (record[k] for k in (*REPLY_KEYS, "answer") if isinstance(record.get(k), str)),
                None,
            )
            if reply is None:
                raise KeyError("reply")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            result.skip(f"line {number}: not a dialogue record ({type(exc).__name__}: {exc})")
            continue
        conversation = record.get("conversation", record.get("id"))
        entry = _dialogue(context, reply, None if conversation is None else str(conversation))
        if entry is None:
            result.skip(f"line {number}: no customer message or no reply")
        else:
            result.entries.append(entry)


# --- CSV ----------------------------------------------------------------------------------------

# Header names, lower-cased; Chinese shops' spreadsheets name their columns in Chinese.
_COLUMNS = {
    "customer": ("customer", "客户", "顾客", "买家", "用户"),
    "agent": ("agent", "客服", "回复", "卖家"),
    "question": ("question", "问题", "q"),
    "answer": ("answer", "答案", "回答", "a"),
    "conversation": ("conversation", "session", "会话", "会话id"),
}


def _parse_csv(
    path: Path, lines: list[tuple[int, str]], result: ParseResult, faq_only: bool
) -> None:
    if not lines:
        return
    text = "\n".join(line for _, line in lines)
    dialect = csv.excel_tab if "\t" in lines[0][1] and "," not in lines[0][1] else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower() for h in next(reader)]
    where = {
        name: next((i for i, h in enumerate(header) if h in aliases), None)
        for name, aliases in _COLUMNS.items()
    }
    if where["question"] is not None and where["answer"] is not None:
        result.kind = "faq"
        q_col, a_col = where["question"], where["answer"]
    elif not faq_only and where["customer"] is not None and where["agent"] is not None:
        q_col, a_col = where["customer"], where["agent"]
    else:
        wanted = "question,answer" if faq_only else "customer,agent (or question,answer)"
        raise KnowledgeError(
            f"{path}: the first row must name the columns: {wanted}; it is {','.join(header)!r}"
        )
    conv_col = where["conversation"]
    history: list[str] = []
    last_conversation: str | None = None
    for row_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if max(q_col, a_col) >= len(row):
            result.skip(f"row {row_no}: {len(row)} columns, the header has {len(header)}")
            continue
        question, answer = row[q_col].strip(), row[a_col].strip()
        if result.kind == "faq":
            entry = _faq(question, answer)
        else:
            conversation = (
                row[conv_col].strip() if conv_col is not None and conv_col < len(row) else None
            )
            if conversation is None or conversation != last_conversation:
                history = []  # rows of one chat are consecutive; without the column, each alone
            last_conversation = conversation
            entry = _dialogue([*history, question], answer, conversation)
            history += [t for t in (question, answer) if t]
        if entry is None:
            result.skip(f"row {row_no}: an empty question or answer")
        else:
            result.entries.append(entry)


# --- FAQ Markdown -------------------------------------------------------------------------------

_QUESTION = re.compile(r"^\s*(?:#{2,6}\s+|(?:Q|q|问|问题)\s*[:：]\s*)(?P<text>.*)$")
_ANSWER = re.compile(r"^\s*(?:A|a|答|答案)\s*[:：]\s*(?P<text>.*)$")


def _faq(question: str, answer: str) -> ParsedEntry | None:
    q = normalize_turn(question)
    a = normalize_turn(answer, MAX_ANSWER_CHARS)
    return ParsedEntry("faq", (q,), a) if q and a else None


def _parse_markdown_faq(path: Path, lines: list[tuple[int, str]], result: ParseResult) -> None:
    """``## question`` (or ``Q: question``) then the answer's lines until the next question."""
    result.kind = "faq"
    question: tuple[int, str] | None = None
    answer: list[str] = []

    def close() -> None:
        if question is None:
            return
        entry = _faq(question[1], "\n".join(answer))
        if entry is None:
            result.skip(f"line {question[0]}: a question without an answer")
        else:
            result.entries.append(entry)

    for number, line in lines:
        asked = _QUESTION.match(line)
        if asked:
            close()
            question, answer = (number, asked["text"].strip()), []
            continue
        if question is None:
            continue  # a title or an introduction before the first question
        answered = _ANSWER.match(line)
        answer.append(answered["text"] if answered else line)
    close()
