"""Where customers come from: channels. Plain Python (no Qt); the window polls them.

A channel hands the workspace customer messages (``Incoming``) and hears what the agent sent.
``ManualChannel`` is the agent pasting or typing a customer's message; ``ReplayChannel`` plays real
conversations from a JDDC 2019 corpus as arriving customers (for demos and training new staff). A
bridge to a shop platform would be one more class with the same two methods.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.scoring.corpus import JDDC2019_COLUMNS, normalize_turn


@dataclass(frozen=True)
class Incoming:
    """One customer message arriving through a channel."""

    channel: str
    key: str
    """The channel's own id for the conversation (a replay session, a platform chat id)."""
    customer: str
    """The customer's masked id."""
    text: str
    display_name: str | None = None
    reference: str | None = None
    """Replay only: what the real agent answered next, shown to trainees for comparison."""


class Channel(Protocol):
    name: str

    def poll(self, now: float) -> list[Incoming]:
        """Messages that have arrived by ``now`` (monotonic seconds)."""
        ...

    def agent_replied(self, key: str, text: str, now: float) -> None:
        """The agent sent ``text`` in the conversation ``key``."""
        ...


class ManualChannel:
    """The agent pastes or types the customer's message."""

    name = "manual"

    def __init__(self) -> None:
        self._pending: deque[Incoming] = deque()
        self._numbers = itertools.count(1)

    def new_key(self) -> str:
        return f"manual-{next(self._numbers)}"

    def submit(self, text: str, key: str | None = None, customer: str | None = None) -> Incoming:
        key = key or self.new_key()
        incoming = Incoming(self.name, key, customer or key, text)
        self._pending.append(incoming)
        return incoming

    def poll(self, now: float) -> list[Incoming]:
        out = list(self._pending)
        self._pending.clear()
        return out

    def agent_replied(self, key: str, text: str, now: float) -> None:
        pass


@dataclass
class ReplaySession:
    """One real conversation: blocks of consecutive customer turns and the agent's answers."""

    session_id: str
    customer: str
    turns: list[tuple[bool, str]]
    """(is_agent, text), in order, consecutive turns of one speaker merged."""
    position: int = 0
    due_at: float | None = None

    def next_customer_block(self) -> tuple[list[str], str | None]:
        """The customer's next messages and the real agent's answer to them (advancing)."""
        texts: list[str] = []
        while self.position < len(self.turns) and self.turns[self.position][0]:
            self.position += 1  # agent turns the agent in the window already answered
        while self.position < len(self.turns) and not self.turns[self.position][0]:
            texts.append(self.turns[self.position][1])
            self.position += 1
        reference = None
        if self.position < len(self.turns) and self.turns[self.position][0]:
            reference = self.turns[self.position][1]
        return texts, reference

    @property
    def finished(self) -> bool:
        return not any(not is_agent for is_agent, _ in self.turns[self.position :])


def read_jddc2019_sessions(path: Path, limit: int | None = None) -> list[ReplaySession]:
    """Whole sessions from a JDDC 2019 chat file (7 tab-separated columns), in file order."""
    sessions: dict[str, ReplaySession] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line_no, line in enumerate(lines, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != JDDC2019_COLUMNS:
                raise ValueError(
                    f"{path}:{line_no}: expected {JDDC2019_COLUMNS} tab-separated columns, "
                    f"got {len(cols)} (is this a JDDC 2019 chat file?)"
                )
            session_id, user, waiter_send, *_rest, content = cols
            text = normalize_turn(content)
            if not text or text == "NULL":
                continue
            if session_id not in sessions:
                if limit is not None and len(sessions) >= limit:
                    break
                sessions[session_id] = ReplaySession(session_id, user, [])
            turns = sessions[session_id].turns
            is_agent = waiter_send == "1"
            if turns and turns[-1][0] == is_agent:
                turns[-1] = (is_agent, turns[-1][1] + " " + text)
            else:
                turns.append((is_agent, text))
    return [s for s in sessions.values() if any(not a for a, _ in s.turns)]


@dataclass
class ReplayChannel:
    """Real conversations arriving one after another; each customer answers after the agent does.

    A new customer arrives every ``interval_s`` seconds while fewer than ``max_active`` replayed
    conversations are open; after the agent replies, the customer's next message comes after
    ``reply_delay_s`` seconds.
    """

    sessions: list[ReplaySession]
    interval_s: float = 15.0
    reply_delay_s: float = 3.0
    max_active: int = 4
    name: str = "replay"
    _waiting: deque[ReplaySession] = field(default_factory=deque)
    _active: dict[str, ReplaySession] = field(default_factory=dict)
    _next_arrival: float | None = None

    def __post_init__(self) -> None:
        self._waiting = deque(self.sessions)

    @classmethod
    def from_file(
        cls, path: Path, interval_s: float = 15.0, limit: int | None = 200, shuffle: bool = True
    ) -> ReplayChannel:
        sessions = read_jddc2019_sessions(path, limit)
        if shuffle:
            random.Random(7).shuffle(sessions)
        if not sessions:
            raise ValueError(f"{path} holds no conversation with a customer message")
        return cls(sessions, interval_s=interval_s)

    @property
    def remaining(self) -> int:
        return len(self._waiting)

    def poll(self, now: float) -> list[Incoming]:
        out: list[Incoming] = []
        if self._next_arrival is None:
            self._next_arrival = now
        if self._waiting and len(self._active) < self.max_active and now >= self._next_arrival:
            session = self._waiting.popleft()
            self._active[session.session_id] = session
            session.due_at = now
            self._next_arrival = now + self.interval_s
        for key, session in list(self._active.items()):
            if session.due_at is None or now < session.due_at:
                continue
            session.due_at = None
            texts, reference = session.next_customer_block()
            for i, text in enumerate(texts):
                last = i == len(texts) - 1
                out.append(
                    Incoming(
                        self.name,
                        key,
                        session.customer,
                        text,
                        reference=reference if last else None,
                    )
                )
            if session.finished:
                del self._active[key]
        return out

    def agent_replied(self, key: str, text: str, now: float) -> None:
        session = self._active.get(key)
        if session is not None and session.due_at is None:
            session.due_at = now + self.reply_delay_s
