"""The suite's test doubles, in one place: stand-ins only for what a test cannot reach or must
script (a cloud teacher's answers, the OS keyring, a model's replies, fixed scores).

Each double records what it was asked, so a test can check what reached it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring.backend
import keyring.errors
import numpy as np
from jaraco.classes import properties

from app.cloud.prompt import PromptExample
from app.cloud.teacher import TeacherAnswer, TeacherRequest, Usage
from app.engine.backend import GenerationConfig
from app.engine.conversation import Message, format_chatml

DEFAULT_REPLY = "亲，您好，这款商品今天下单今天发货哦。"
"""What ``ScriptedBackend`` drafts when its script is used up."""
TEACHER_REPLY = "亲，这款今天下单今天就能发货的。"
"""What ``ScriptedTeacher`` answers when its script is used up."""


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Secrets in a dict; never chosen by keyring's own backend discovery."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("only set explicitly by tests")

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


@dataclass
class ScriptedTeacher:
    """A cloud provider stand-in: plays back a script of answers (str) and failures (exceptions),
    then answers ``TEACHER_REPLY``; records each request."""

    script: list[object] = field(default_factory=list)
    provider: str = "scripted"
    model: str = "m1"
    is_local: bool = False
    requests: list[TeacherRequest] = field(default_factory=list)

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else TEACHER_REPLY
        if isinstance(step, Exception):
            raise step
        return TeacherAnswer(str(step), self.provider, self.model, Usage(100, 20))


@dataclass
class OneExample:
    """An example bank stand-in: the same past dialogue for every query."""

    example: PromptExample

    def retrieve(self, query: str, k: int) -> list[PromptExample]:
        return [self.example]


@dataclass
class ScriptedBackend:
    """A generation backend whose replies are scripted; streams two characters at a time.

    ``gate``, when given, holds the stream after its first piece until it is set, so a test can
    look at a draft in the middle of being written. An active adapter prefixes its name, so a test
    can tell which adapter wrote a draft.
    """

    replies: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    gate: threading.Event | None = None
    name: str = "llamacpp"  # stands in for llama.cpp, which serves LoRA adapters
    chat_format: str = "chatml"
    n_ctx: int = 2048
    prompts: list[str] = field(default_factory=list)
    adapters: dict[str, Path] = field(default_factory=dict)
    _active: str | None = None

    def count_tokens(self, text: str) -> int:
        return len(text) // 2 + 1

    def render(self, messages: Sequence[Message]) -> str:
        return format_chatml(messages)

    def stream(
        self, prompt: str, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]:
        self.prompts.append(prompt)
        reply = self.replies.pop(0) if self.replies else DEFAULT_REPLY
        if self._active:
            reply = f"[{self._active}] {reply}"
        for i in range(0, len(reply), 2):
            if cancel is not None and cancel.is_set():
                return
            yield reply[i : i + 2]
            if i == 0 and self.gate is not None:
                self.gate.wait(10)
            if self.delay_s:
                time.sleep(self.delay_s)

    def warm_up(self, prefix: str) -> None:
        pass

    def load_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = Path(path)

    def set_adapter(self, name: str | None) -> None:
        if name is not None and name not in self.adapters:
            raise KeyError(name)
        self._active = name

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def close(self) -> None:
        pass


@dataclass
class FixedSimilarity:
    """Similarity of any two texts: ``value``."""

    value: float = 0.9
    version: str = "fixed-sim"

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Any:
        return np.full(len(a), self.value)


@dataclass
class FixedMatching:
    """Matching of a reply: ``by_reply`` when listed, else ``value``."""

    value: float = 0.7
    by_reply: dict[str, float] = field(default_factory=dict)
    version: str = "indomain:fixed-match"
    """As a matcher trained on the shop's chats: its match-only scores count (`is_calibrated`)."""

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Any:
        return np.asarray([self.by_reply.get(r, self.value) for r in replies])
