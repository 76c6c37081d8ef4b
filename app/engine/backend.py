"""What every end-model backend offers, and the generation settings they share."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.engine.conversation import Message


@dataclass
class GenerationConfig:
    """Sampling settings; the defaults are the ECC paper's (top_p 0.8, temperature 0.6)."""

    temperature: float = field(default=0.6, metadata={"help": "0 means greedy decoding"})
    top_p: float = field(default=0.8, metadata={"help": "nucleus sampling mass"})
    top_k: int = field(default=40, metadata={"help": "0 disables top-k"})
    repeat_penalty: float = field(default=1.1, metadata={"help": "1.0 disables it"})
    max_tokens: int = field(default=256, metadata={"help": "longest reply, in tokens"})
    seed: int | None = field(default=None, metadata={"help": "fixed seed for repeatable output"})

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.repeat_penalty <= 0:
            raise ValueError("repeat_penalty must be > 0")


class Backend(Protocol):
    """One loaded model. Not thread-safe: the EndModel serialises calls."""

    name: str
    chat_format: str
    n_ctx: int

    def count_tokens(self, text: str) -> int: ...

    def render(self, messages: Sequence[Message]) -> str: ...

    def stream(
        self, prompt: str, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]: ...

    def warm_up(self, prefix: str) -> None:
        """Evaluate a prompt prefix (the system prompt) so later prompts reuse it."""
        ...

    def load_adapter(self, name: str, path: Path) -> None: ...

    def set_adapter(self, name: str | None) -> None: ...

    @property
    def active_adapter(self) -> str | None: ...

    @property
    def adapters(self) -> list[str]:
        """Names of the loaded adapters."""
        ...

    def close(self) -> None: ...
