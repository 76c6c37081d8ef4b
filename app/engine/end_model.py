"""The end model: the engine's public API.

>>> model = EndModel.load()                       # the verified embedded default
>>> for text in model.stream_reply([Turn("customer", "可以选择快递吗？")]):
...     print(text, end="")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.engine import weights
from app.engine.backend import Backend, GenerationConfig
from app.engine.conversation import (
    FitReport,
    Message,
    Shot,
    Turn,
    fit_messages,
    shot_messages,
    system_prompt,
    to_messages,
)

BackendName = Literal["llamacpp", "transformers"]


@dataclass
class EngineConfig:
    """How to load the end model."""

    model: str = field(
        default=weights.DEFAULT_PROFILE,
        metadata={"help": "a built-in profile, a registered model name, or a path"},
    )
    backend: BackendName = field(default="llamacpp", metadata={"help": "llamacpp or transformers"})
    n_ctx: int = field(default=2048, metadata={"help": "context window in tokens"})
    n_threads: int | None = field(default=None, metadata={"help": "CPU threads; None = all cores"})
    n_gpu_layers: int = field(default=0, metadata={"help": "llamacpp: layers offloaded to a GPU"})
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata={"help": "transformers"}
    )
    quantization: Literal["none", "8bit", "4bit"] = field(
        default="none", metadata={"help": "transformers on CUDA: bitsandbytes 8-bit or 4-bit"}
    )
    lang: str = field(default="zh", metadata={"help": "system prompt language: zh or en"})

    def __post_init__(self) -> None:
        if self.backend not in ("llamacpp", "transformers"):
            raise ValueError(f"Unknown backend {self.backend!r}: use llamacpp or transformers")
        if self.n_ctx < 256:
            raise ValueError("n_ctx must be at least 256 tokens")


def load_backend(config: EngineConfig) -> Backend:
    source = weights.resolve(config.model)
    if config.backend == "llamacpp":
        from app.engine.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(source, config.n_ctx, config.n_threads, config.n_gpu_layers)
    from app.engine.hf_backend import TransformersBackend

    gguf_file = source.path.name if source.kind == "gguf" else None
    return TransformersBackend(
        source, config.device, config.quantization, gguf_file=gguf_file, n_ctx=config.n_ctx
    )


class EndModel:
    """A loaded end model that drafts replies; one generation at a time (calls are serialised)."""

    def __init__(self, backend: Backend, system: str, generation: GenerationConfig | None = None):
        self.backend = backend
        self.system = system
        self.generation = generation or GenerationConfig()
        self.last_fit = FitReport()
        self._lock = threading.Lock()
        with self._lock:
            self.backend.warm_up(self.backend.render([("system", system)]))

    @classmethod
    def load(
        cls, config: EngineConfig | None = None, generation: GenerationConfig | None = None
    ) -> EndModel:
        config = config or EngineConfig()
        return cls(load_backend(config), system_prompt(config.lang), generation)

    def prepare(
        self,
        conversation: Sequence[Turn],
        max_tokens: int | None = None,
        shots: Sequence[Shot] = (),
    ) -> tuple[str, FitReport]:
        """The exact prompt the model will see, and what had to be left out to fit."""
        kept, report = self.fit(conversation, max_tokens, shots)
        return self.backend.render(kept), report

    def fit(
        self,
        conversation: Sequence[Turn],
        max_tokens: int | None = None,
        shots: Sequence[Shot] = (),
    ) -> tuple[list[Message], FitReport]:
        """The messages the model will see (the oldest left out to fit the context window)."""
        messages = to_messages(conversation, self.system, shots)
        reserve = max_tokens or self.generation.max_tokens
        budget = self.backend.n_ctx - reserve
        if budget < 64:
            raise ValueError(
                f"max_tokens {reserve} leaves no room for the prompt in a {self.backend.n_ctx}-token "
                f"context"
            )
        return fit_messages(
            messages,
            self.backend.render,
            self.backend.count_tokens,
            budget,
            shots=len(shot_messages(shots)),
        )

    def stream_reply(
        self,
        conversation: Sequence[Turn],
        cancel: threading.Event | None = None,
        generation: GenerationConfig | None = None,
        shots: Sequence[Shot] = (),
    ) -> Iterator[str]:
        """Stream the agent's next reply to the customer's latest message.

        Raises EmptyMessageError (before generating anything) for an empty message. Setting
        ``cancel`` stops between tokens. ``last_fit`` tells what was left out of the context.
        ``shots``: past dialogues like this one, shown as examples (``to_messages``).
        """
        generation = generation or self.generation
        prompt, report = self.prepare(conversation, generation.max_tokens, shots)  # raises eagerly
        return self._generate(prompt, report, generation, cancel)

    def _generate(
        self,
        prompt: str,
        report: FitReport,
        generation: GenerationConfig,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        with self._lock:
            self.last_fit = report
            yield from self.backend.stream(prompt, generation, cancel)

    def reply(
        self,
        conversation: Sequence[Turn],
        generation: GenerationConfig | None = None,
        shots: Sequence[Shot] = (),
    ) -> str:
        return "".join(self.stream_reply(conversation, generation=generation, shots=shots)).strip()

    # --- adapters ------------------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        with self._lock:
            self.backend.load_adapter(name, path)

    def set_adapter(self, name: str | None) -> None:
        """Switch the active adapter (None = base model) without reloading the model."""
        with self._lock:
            self.backend.set_adapter(name)
            self.backend.warm_up(self.backend.render([("system", self.system)]))

    @property
    def active_adapter(self) -> str | None:
        return self.backend.active_adapter

    def close(self) -> None:
        with self._lock:
            self.backend.close()
