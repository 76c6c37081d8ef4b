"""The default backend: llama.cpp through llama-cpp-python (CPU, or CUDA where built so)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from app.engine.backend import GenerationConfig
from app.engine.conversation import FORMATTERS, STOP_STRINGS, Message
from app.engine.weights import ModelError, ModelSource


def default_threads() -> int:
    """All cores: llama-cpp-python's default of half the cores halves decode speed on 2 cores."""
    return max(os.cpu_count() or 1, 1)


def open_llama(path: Path, n_ctx: int, n_threads: int, n_gpu_layers: int = 0) -> Any:
    """A llama_cpp.Llama with Xiaoer's settings (also used raw by the benchmark's baseline)."""
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        n_gpu_layers=n_gpu_layers,
        verbose=False,
    )


def completion_kwargs(config: GenerationConfig, stop: list[str]) -> dict[str, Any]:
    return {
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "min_p": 0.0,
        "repeat_penalty": config.repeat_penalty,
        "seed": config.seed,
        "stop": stop,
        "stream": True,
    }


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(
        self,
        source: ModelSource,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        if source.kind != "gguf":
            raise ModelError(f"The llamacpp backend loads GGUF files; {source.path} is not one")
        try:
            self.llm = open_llama(source.path, n_ctx, n_threads or default_threads(), n_gpu_layers)
        except ValueError as exc:  # llama-cpp-python raises ValueError for unloadable files
            raise ModelError(f"llama.cpp could not load {source.path}: {exc}") from exc
        self.n_ctx = int(self.llm.n_ctx())
        self.chat_format = self._detect_format(source)
        self._render = FORMATTERS[self.chat_format]
        self._stop = STOP_STRINGS[self.chat_format]
        self._adapters: dict[str, Any] = {}
        self._active: str | None = None

    def _detect_format(self, source: ModelSource) -> str:
        if source.chat_format != "auto":
            return source.chat_format
        metadata: dict[str, str] = self.llm.metadata
        arch = metadata.get("general.architecture", "")
        if arch.startswith("chatglm"):
            return "chatglm3"
        return "chatml"

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def render(self, messages: Sequence[Message]) -> str:
        return self._render(messages)

    def warm_up(self, prefix: str) -> None:
        tokens = self.llm.tokenize(prefix.encode("utf-8"), add_bos=False, special=True)
        self.llm.reset()
        self.llm.eval(tokens)

    def stream(
        self, prompt: str, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]:
        chunks = self.llm.create_completion(prompt, **completion_kwargs(config, self._stop))
        try:
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    break
                text = chunk["choices"][0]["text"]
                if text:
                    yield text
        finally:
            chunks.close()

    # --- LoRA adapters (GGUF) -----------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        import llama_cpp

        if not Path(path).is_file():
            raise ModelError(f"LoRA adapter file {path} does not exist")
        handle = llama_cpp.llama_adapter_lora_init(self.llm.model, str(path).encode("utf-8"))
        if not handle:
            raise ModelError(
                f"llama.cpp could not load the LoRA adapter {path}: it must be a GGUF LoRA made for "
                f"this base model"
            )
        self._adapters[name] = handle

    def set_adapter(self, name: str | None) -> None:
        import llama_cpp

        if name is not None and name not in self._adapters:
            raise ModelError(f"LoRA adapter '{name}' is not loaded")
        if name is None:
            rc = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[name])
            scales = (ctypes.c_float * 1)(1.0)
            rc = llama_cpp.llama_set_adapters_lora(self.llm.ctx, adapters, 1, scales)
        if rc != 0:
            raise ModelError(f"llama.cpp refused to switch to adapter '{name}' (error {rc})")
        self._active = name
        # The cached KV of earlier prompts was computed with the old weights.
        self.llm.reset()

    @property
    def active_adapter(self) -> str | None:
        return self._active

    @property
    def adapters(self) -> list[str]:
        return list(self._adapters)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()
        self.llm = _Closed()


class _Closed:
    """Stands in for a closed model: llama.cpp would crash on a freed one, this raises instead."""

    def __getattr__(self, name: str) -> Any:
        raise ModelError("The end model was closed; load it again")
