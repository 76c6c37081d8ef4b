"""Trainable base weights for the end model.

The embedded end model is a quantized GGUF file. transformers can load it (``gguf_file=``),
dequantised to float32, but that takes ~50 s; the result is cached as a safetensors model
directory next to the GGUF so later runs load it in a few seconds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from app.engine import weights
from app.engine.weights import ModelError, ModelSource


def cache_dir_for(source: ModelSource) -> Path:
    """Where the dequantised copy of a GGUF model lives (beside it, in the models dir)."""
    return source.path.parent / "hf-cache" / source.path.stem


def trainable_dir(spec: str | None = None) -> Path:
    """An HF model directory for ``spec`` (a profile, registered name or path), cached if needed."""
    source = weights.resolve(spec)
    if source.kind == "hf":
        return source.path
    target = cache_dir_for(source)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    return _dequantise(source, target)


def _dequantise(source: ModelSource, target: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location, name = str(source.path.parent), source.path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(location, gguf_file=name, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelError(f"transformers could not read {source.path}: {exc}") from exc
    # transformers 5 marks GGUF-loaded models as quantized; the weights are plain float32 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_for_training(
    spec: str | None = None, device: str = "cpu", quantization: str = "none"
) -> tuple[Any, Any]:
    """(model, tokenizer) ready for a peft wrapper: float32 on CPU, bf16 or 4-bit (QLoRA) on CUDA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from app.engine.hf_backend import quantization_config

    directory = trainable_dir(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if device == "cuda" else torch.float32}
    bnb = quantization_config("4bit" if quantization == "4bit" else "none", device == "cuda")
    if bnb is not None:
        kwargs.update(quantization_config=BitsAndBytesConfig(**bnb), device_map={"": 0})
    model = AutoModelForCausalLM.from_pretrained(str(directory), **kwargs)
    if bnb is None:
        model.to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
