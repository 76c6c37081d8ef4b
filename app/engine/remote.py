"""The end model on a shared server: a thin desktop drafts through the shop's OpenAI-compatible
server (``xiaoer serve-end``: llama.cpp's server on a CPU box, or vLLM on a GPU) instead of
loading the model itself.

``RemoteEndModel`` is an ``EndModel``: the same ``stream_reply`` (streamed, cancellable with a
``threading.Event`` checked between chunks), the same system prompt and context fitting, so the
UI cannot tell the two apart. The request is ``POST /v1/chat/completions`` with ``stream: true``;
cancelling closes the HTTP response, which both servers take as the end of the request (they stop
decoding for it).

Which model answers is the request's ``model`` name: the base model or an adapter version
(``set_adapter``); vLLM serves every loaded LoRA adapter under its own name, llama.cpp's server
the one it was started with (``app/local_server/end_server.py``).

Chosen by ``$XIAOER_END_URL`` (e.g. ``http://gpu.shop.lan:8080/v1``), with the server's key in
``$XIAOER_END_KEY`` and, optionally, the model name in ``$XIAOER_END_MODEL``.

Plain Python (no Qt).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.backend import GenerationConfig
from app.engine.conversation import (
    FitReport,
    Message,
    Shot,
    Turn,
    format_chatml,
    system_prompt,
)
from app.engine.end_model import EndModel
from app.engine.weights import ModelError

END_URL_ENV = "XIAOER_END_URL"
END_KEY_ENV = "XIAOER_END_KEY"
END_MODEL_ENV = "XIAOER_END_MODEL"
SERVED_TTL_S = 10.0
"""How long the server's list of served names is trusted before it is asked again."""


@dataclass
class RemoteConfig:
    """Where the shop's end-model server is and how to talk to it."""

    base_url: str = field(metadata={"help": "the OpenAI-compatible API root, ending in /v1"})
    api_key: str = field(default="", repr=False, metadata={"help": "the server's key"})
    model: str | None = field(
        default=None, metadata={"help": "the served model name; None: the first /v1/models lists"}
    )
    n_ctx: int = field(default=2048, metadata={"help": "the server's context window, in tokens"})
    timeout_s: float = field(default=120.0, metadata={"help": "one request, start to end"})
    lang: str = field(default="zh", metadata={"help": "system prompt language: zh or en"})

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"The end-model server's URL must be http(s)://…, not {self.base_url}")
        if self.n_ctx < 256:
            raise ValueError("n_ctx must be at least 256 tokens")

    @classmethod
    def from_env(cls, **overrides: Any) -> RemoteConfig | None:
        """``$XIAOER_END_URL`` (with ``$XIAOER_END_KEY``, ``$XIAOER_END_MODEL``); None when the
        variable is unset (the desktop loads its own model)."""
        url = os.environ.get(END_URL_ENV, "").strip()
        if not url:
            return None
        values: dict[str, Any] = {
            "base_url": url,
            "api_key": os.environ.get(END_KEY_ENV, ""),
            "model": os.environ.get(END_MODEL_ENV, "").strip() or None,
        }
        return cls(**{**values, **overrides})


def estimate_tokens(text: str) -> int:
    """A token count that is never below Qwen's tokenizer's for the text, without the tokenizer
    (a thin client has no model files): one token per CJK or other BMP character and per ASCII
    digit or symbol, half a token per ASCII letter, four per character beyond the BMP (emoji are
    byte-level tokens). Chinese shop chat runs 1.3–1.6 characters a token, so the budget loses
    about a third of the window to the margin, never overflows it."""
    letters = other = wide = 0
    for char in text:
        if char.isascii():
            if char.isalpha():
                letters += 1
            else:
                other += 1
        elif ord(char) > 0xFFFF:
            wide += 1
        else:
            other += 1
    return other + math.ceil(letters / 2) + 4 * wide


class RemoteBackend:
    """A served model, seen through the Backend protocol the EndModel fits prompts with."""

    name = "remote"
    chat_format = "chatml"

    def __init__(self, config: RemoteConfig) -> None:
        from openai import OpenAI

        self.config = config
        self.n_ctx = config.n_ctx
        # max_retries=0: a draft the agent waits for is not retried behind their back.
        self.client = OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "none",
            timeout=config.timeout_s,
            max_retries=0,
        )
        self._base = config.model
        self._active: str | None = None
        self._served: tuple[float, list[str]] | None = None

    # --- what the EndModel fits prompts with ---------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def render(self, messages: Sequence[Message]) -> str:
        """ChatML: what the server's chat template makes of the messages (Qwen's), for counting."""
        return format_chatml(messages)

    def warm_up(self, prefix: str) -> None:
        """The server keeps its own prompt cache."""

    def stream(
        self, prompt: str, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]:
        raise ModelError("A served end model takes chat messages (stream_messages), not a prompt")

    # --- the request ---------------------------------------------------------------------------

    def served_models(self) -> list[str]:
        """The names the server answers to (``GET /v1/models``)."""
        try:
            return [m.id for m in self.client.models.list().data]
        except Exception as exc:  # openai's errors: connection, status, timeout
            raise self._error(exc) from exc

    def request_model(self) -> str:
        """The ``model`` of the next request: the shop's active adapter once the server serves
        it (vLLM after loading it, llama.cpp after ``serve-end --follow`` restarted with it),
        else the configured name, else the first the server lists."""
        if self._active is None and self._base is not None:
            return self._base
        served = self._served_recently()
        if self._active is not None and self._active in served:
            return self._active
        if self._base is None:
            if not served:
                raise ModelError(f"The end-model server at {self.config.base_url} serves no model")
            self._base = served[0]
        return self._base

    def _served_recently(self) -> list[str]:
        """``served_models()``, asked at most every ``SERVED_TTL_S``."""
        now = time.monotonic()
        if self._served is None or now - self._served[0] > SERVED_TTL_S:
            self._served = (now, self.served_models())
        return self._served[1]

    def stream_messages(
        self,
        messages: Sequence[Message],
        config: GenerationConfig,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        """The reply's text as the server streams it; stops (closing the request) once
        ``cancel`` is set."""
        body: dict[str, Any] = {
            "model": self.request_model(),
            "messages": [{"role": role, "content": text} for role, text in messages],
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "stream": True,
            # Both servers take these sampling settings beside OpenAI's (llama.cpp's names,
            # then vLLM's).
            "extra_body": {
                "top_k": config.top_k,
                "repeat_penalty": config.repeat_penalty,
                "repetition_penalty": config.repeat_penalty,
            },
        }
        if config.seed is not None:
            body["seed"] = config.seed
        try:
            stream = self.client.chat.completions.create(**body)
        except Exception as exc:
            raise self._error(exc) from exc
        try:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    break
                if not chunk.choices:
                    continue
                text = chunk.choices[0].delta.content
                if text:
                    yield text
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            stream.close()  # on cancel: the server sees the client go and stops decoding

    def _error(self, exc: Exception) -> ModelError:
        return ModelError(
            f"The shop's end-model server at {self.config.base_url} failed: "
            f"{type(exc).__name__}: {exc}"
        )

    # --- adapters: the server holds them; a request names one ----------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Served adapters are loaded by the server (``xiaoer serve-end``); this checks that it
        has ``name``."""
        if name not in self.adapters:
            raise ModelError(f"The end-model server does not serve adapter '{name}' (yet)")

    def set_adapter(self, name: str | None) -> None:
        """Ask for adapter ``name`` (None: the base) from the next request on, as soon as the
        server serves it."""
        self._active = name
        self._served = None

    @property
    def active_adapter(self) -> str | None:
        return self._active

    @property
    def adapters(self) -> list[str]:
        base = self._base
        return [name for name in self.served_models() if name != base]

    def close(self) -> None:
        self.client.close()


class RemoteEndModel(EndModel):
    """An EndModel whose replies come from the shop's server (see the module's docstring)."""

    backend: RemoteBackend

    def __init__(
        self,
        backend: RemoteBackend,
        system: str,
        generation: GenerationConfig | None = None,
    ) -> None:
        super().__init__(backend, system, generation)

    @classmethod
    def connect(
        cls, config: RemoteConfig, generation: GenerationConfig | None = None
    ) -> RemoteEndModel:
        """Ready to draft; nothing is sent until the first request."""
        return cls(RemoteBackend(config), system_prompt(config.lang), generation)

    def stream_reply(
        self,
        conversation: Sequence[Turn],
        cancel: threading.Event | None = None,
        generation: GenerationConfig | None = None,
        shots: Sequence[Shot] = (),
    ) -> Iterator[str]:
        generation = generation or self.generation
        messages, report = self.fit(conversation, generation.max_tokens, shots)  # raises eagerly
        return self._generate_messages(messages, report, generation, cancel)

    def _generate_messages(
        self,
        messages: list[Message],
        report: FitReport,
        generation: GenerationConfig,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        with self._lock:
            self.last_fit = report
            yield from self.backend.stream_messages(messages, generation, cancel)

    def set_adapter(self, name: str | None) -> None:
        with self._lock:
            self.backend.set_adapter(name)
