"""What every cloud teacher offers: one chat completion, already redacted, with token accounting.

Providers (``app.cloud.providers``) only translate a ``TeacherRequest`` into their API and back.
Redaction, prompts, caching, retries, the outbox and recording live above them, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from app.errors import XiaoerError

ChatRole = Literal["system", "user", "assistant"]


class TeacherError(XiaoerError):
    """A teacher call failed; the message never contains an API key."""


class TeacherUnavailable(TeacherError):
    """Worth retrying later: timeouts, connection errors, HTTP 429 and 5xx."""


class LocalTeacherNotRunning(TeacherUnavailable):
    """The local teacher (the llama.cpp server Xiaoer starts) is not running: start it (the
    window's Start button, or `xiaoer teacher serve`)."""


class TeacherRejected(TeacherError):
    """Not worth retrying: bad key, bad request, refused content, malformed or empty output."""


@dataclass(frozen=True)
class TeacherRequest:
    messages: tuple[tuple[ChatRole, str], ...]
    """System instruction, example pairs and the (redacted) conversation, in order."""
    max_tokens: int = 256
    temperature: float = 0.3


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class TeacherAnswer:
    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)


class CloudTeacher(Protocol):
    provider: str
    """e.g. ``gemini``, ``openai-compatible``, ``local``."""
    model: str
    is_local: bool
    """True only for a teacher on this machine (127.0.0.1): nothing leaves the device."""

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        """One completion; raises TeacherUnavailable or TeacherRejected."""
        ...
