"""The transformers backend: any Hugging Face causal LM directory, with peft adapters.

On a CUDA GPU it loads 8-bit or 4-bit weights through bitsandbytes. Heavy imports happen inside
functions so that the default llama.cpp path never pays for torch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from app.engine import chatglm3
from app.engine.backend import GenerationConfig
from app.engine.conversation import FORMATTERS, Message
from app.engine.weights import ModelError, ModelSource

Quantization = Literal["none", "8bit", "4bit"]
Device = Literal["auto", "cpu", "cuda"]


def quantization_config(quantization: Quantization, cuda_available: bool) -> dict[str, Any] | None:
    """Keyword arguments for ``BitsAndBytesConfig``, or None for full-precision weights."""
    if quantization == "none":
        return None
    if not cuda_available:
        raise ModelError(
            f"{quantization} loading uses bitsandbytes on a CUDA GPU, and none is available. "
            f"Use quantization 'none' on CPU, or the llamacpp backend with a quantized GGUF."
        )
    if quantization == "8bit":
        return {"load_in_8bit": True}
    if quantization == "4bit":
        return {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": "bfloat16",
        }
    raise ModelError(f"Unknown quantization {quantization!r}: use none, 8bit or 4bit")


def pick_token(logits: Any, config: GenerationConfig, seen: Sequence[int], generator: Any) -> int:
    """The next token under the repetition penalty, temperature, top-k and top-p of ``config``."""
    import torch

    logits = logits.float().clone()
    if config.repeat_penalty != 1.0 and seen:
        index = torch.tensor(sorted(set(seen)), device=logits.device)
        values = logits[index]
        logits[index] = torch.where(
            values > 0, values / config.repeat_penalty, values * config.repeat_penalty
        )
    if config.temperature == 0:
        return int(logits.argmax())
    logits = logits / config.temperature
    if config.top_k:
        kth = torch.topk(logits, min(config.top_k, logits.numel())).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    ordered, order = torch.sort(probs, descending=True)
    outside = ordered.cumsum(0) - ordered > config.top_p  # keep the smallest nucleus
    ordered[outside] = 0.0
    choice = torch.multinomial(ordered / ordered.sum(), 1, generator=generator)
    return int(order[choice])


def has_token(tokenizer: Any, token: str) -> bool:
    """Whether ``token`` is one token of ``tokenizer``'s vocabulary. (``get_vocab()`` would build
    a dict of the whole vocabulary, ~50 ms for Qwen's 151k tokens, on every call.)"""
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id is not None and token_id != tokenizer.unk_token_id


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        source: ModelSource,
        device: Device = "auto",
        quantization: Quantization = "none",
        gguf_file: str | None = None,
        n_ctx: int = 4096,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
        except ImportError as exc:
            raise ModelError(
                "The transformers backend needs torch, transformers and peft: "
                "pip install 'xiaoer[hf]' (make run installs them)"
            ) from exc
        if source.kind != "hf" and gguf_file is None:
            raise ModelError(
                f"The transformers backend loads model directories; {source.path} is not one"
            )
        cuda = bool(torch.cuda.is_available())
        if device == "cuda" and not cuda:
            raise ModelError("device 'cuda' was asked for, but torch sees no CUDA GPU")
        self.device = "cuda" if (device == "auto" and cuda) or device == "cuda" else "cpu"
        bnb = quantization_config(quantization, self.device == "cuda")
        self.is_chatglm = source.chat_format == "chatglm3"
        location = str(source.path if source.kind == "hf" else source.path.parent)
        kwargs: dict[str, Any] = {"trust_remote_code": self.is_chatglm}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
            model_kwargs = dict(kwargs)
            if bnb is not None:
                model_kwargs["quantization_config"] = BitsAndBytesConfig(**bnb)
                model_kwargs["device_map"] = "auto"
            else:
                model_kwargs["dtype"] = torch.bfloat16 if self.device == "cuda" else torch.float32
            self.base_model = AutoModelForCausalLM.from_pretrained(location, **model_kwargs)
        except (OSError, ValueError) as exc:
            raise ModelError(f"transformers could not load {source.path}: {exc}") from exc
        if bnb is None:
            self.base_model.to(self.device)
        self.base_model.eval()
        if self.is_chatglm:
            chatglm3.patch_tokenizer_pad(self.tokenizer)
            chatglm3.patch_model(self.base_model)
            self.chat_format = "chatglm3"
        else:
            self.chat_format = "template" if self.tokenizer.chat_template else "chatml"
        self.model: Any = self.base_model
        limit = getattr(self.base_model.config, "max_position_embeddings", None) or n_ctx
        self.n_ctx = min(n_ctx, int(limit))
        self._adapters: dict[str, Path] = {}
        self._active: str | None = None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def render(self, messages: Sequence[Message]) -> str:
        if self.chat_format == "template":
            chat = [{"role": role, "content": text} for role, text in messages]
            rendered: str = self.tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=True
            )
            return rendered
        return FORMATTERS[self.chat_format](messages)

    def warm_up(self, prefix: str) -> None:
        """Nothing to warm: transformers recomputes the prompt on every call."""

    def stream(
        self, prompt: str, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()  # also set when the consumer stops reading early

        class _Cancelled(StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop.is_set() or (cancel is not None and cancel.is_set())

        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(
            self.device
        )
        if (
            self.model is not self.base_model
            and self.model.peft_config[self.model.active_adapter].is_prompt_learning
        ):
            # transformers' generate() drops the virtual key/values peft injects: decode here.
            yield from self._decode_with_prefix(inputs, config, cancel)
            return
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        greedy = config.temperature == 0
        gen_kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": config.max_tokens,
            "do_sample": not greedy,
            "repetition_penalty": config.repeat_penalty,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if not greedy:
            gen_kwargs.update(
                temperature=config.temperature, top_p=config.top_p, top_k=config.top_k
            )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**gen_kwargs)
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="xiaoer-hf-generate", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            stop.set()
            worker.join()
        if errors:
            raise errors[0]

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        for token in ("<|im_end|>", "<|endoftext|>", "<|user|>", "<|observation|>"):
            if has_token(self.tokenizer, token):
                ids.add(self.tokenizer.convert_tokens_to_ids(token))
        return {i for i in ids if i is not None}

    def _decode_with_prefix(
        self, inputs: Any, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]:
        """Token-by-token decoding for Prefix-Tuning / P-Tuning v2 adapters.

        The first forward pass goes through peft, which puts the virtual tokens in the cache; every
        later step feeds one token to the base model with that cache.
        """
        import torch

        generator = torch.Generator(device=self.device)
        if config.seed is not None:
            generator.manual_seed(config.seed)
        stop_ids = self._stop_ids()
        seen = inputs["input_ids"][0].tolist()
        produced: list[int] = []
        shown = ""
        with torch.inference_mode():
            out = self.model(**inputs, use_cache=True)
            for _ in range(config.max_tokens):
                if cancel is not None and cancel.is_set():
                    return
                token = pick_token(out.logits[0, -1], config, seen, generator)
                if token in stop_ids:
                    return
                produced.append(token)
                seen.append(token)
                text = self.tokenizer.decode(produced, skip_special_tokens=True)
                if not text.endswith("\ufffd"):  # wait for a whole character
                    yield text[len(shown) :]
                    shown = text
                cache = out.past_key_values
                mask = torch.ones(
                    1, cache.get_seq_length() + 1, dtype=torch.long, device=self.device
                )
                out = self.base_model(
                    input_ids=torch.tensor([[token]], device=self.device),
                    attention_mask=mask,
                    past_key_values=cache,
                    use_cache=True,
                )

    # --- peft adapters (LoRA, Prefix-Tuning, P-Tuning v2) ------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ModelError(f"{path} is not a peft adapter directory (no adapter_config.json)")
        self._adapters[name] = Path(path)

    def set_adapter(self, name: str | None) -> None:
        """Detach the current adapter and attach another (or none).

        Each switch wraps the untouched base model anew, which works the same for LoRA and for
        prompt-learning adapters (which peft cannot mix in one model).
        """
        from peft import PeftModel

        if name is not None and name not in self._adapters:
            raise ModelError(f"Adapter '{name}' is not loaded")
        if self.model is not self.base_model:
            config = self.model.peft_config[self.model.active_adapter]
            if config.peft_type == "LORA":
                self.base_model = self.model.unload()  # removes the LoRA layers, unmerged
            else:
                self.base_model = self.model.get_base_model()
            self.model = self.base_model
        if name is not None:
            self.model = PeftModel.from_pretrained(self.base_model, str(self._adapters[name]))
            self.model.to(self.device)
            self.model.eval()
        self._active = name

    @property
    def active_adapter(self) -> str | None:
        return self._active

    @property
    def adapters(self) -> list[str]:
        return list(self._adapters)

    def close(self) -> None:
        self.model = self.base_model = None
