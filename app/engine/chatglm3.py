"""What Xiaoer knows about ChatGLM3-6B, the ECC paper's end model.

Its chat format lives in ``conversation.format_chatglm3``; its LoRA targets are below. Its remote
code (``trust_remote_code=True``) predates current transformers in two known ways, patched here on
the loaded classes, without editing the user's model files:

* the tokenizer's ``_pad`` has no ``padding_side`` parameter, which transformers now always passes;
* the model calls ``GenerationMixin._extract_past_from_model_output``, which transformers removed.

No ChatGLM3 weights can be reached from this project's machines, so these shims are checked on
stand-in classes with the same signatures, not on the real model (see the README).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

LORA_TARGET_MODULES = ["query_key_value"]
"""ChatGLM3 fuses Q, K and V into one linear layer per block."""


def patch_tokenizer_pad(tokenizer: Any) -> bool:
    """Let an old ``_pad(self, encoded_inputs, max_length, padding_strategy, ...)`` accept
    ``padding_side``; returns True when the class needed the patch."""
    cls = type(tokenizer)
    original = cls._pad
    if "padding_side" in inspect.signature(original, follow_wrapped=False).parameters:
        return False

    @functools.wraps(original)
    def _pad(self: Any, *args: Any, padding_side: str | None = None, **kwargs: Any) -> Any:
        if padding_side not in (None, "left"):
            # ChatGLM3's tokenizer only pads on the left; asking otherwise would be silently wrong.
            raise ValueError(f"ChatGLM3's tokenizer pads on the left only, not {padding_side!r}")
        return original(self, *args, **kwargs)

    cls._pad = _pad
    return True


def _extract_past_from_model_output(
    self: Any, outputs: Any, standardize_cache_format: bool = False
) -> Any:
    """The removed transformers helper, as ChatGLM3's ``_update_model_kwargs_for_generation``
    expects it: the past key values of the last forward pass (or None)."""
    return getattr(outputs, "past_key_values", None)


def patch_model(model: Any) -> bool:
    """Give the model class the removed helper; returns True when it was missing."""
    cls = type(model)
    if hasattr(cls, "_extract_past_from_model_output"):
        return False
    cls._extract_past_from_model_output = _extract_past_from_model_output
    return True
