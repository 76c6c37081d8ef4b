"""ChatGLM3 compatibility shims, checked on stand-in classes with the signatures of ChatGLM3's
remote code (its weights and code cannot be reached from here: the README says so)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.engine import chatglm3


def test_tokenizer_pad_shim_on_stand_in_class_accepts_padding_side() -> None:
    class OldTokenizer:  # the old signature, without padding_side
        def _pad(
            self,
            encoded_inputs,
            max_length=None,
            padding_strategy=None,
            pad_to_multiple_of=None,
            return_attention_mask=None,
        ):
            return ("padded", max_length)

    tok = OldTokenizer()
    with pytest.raises(TypeError):
        tok._pad({}, max_length=4, padding_side="left")
    assert chatglm3.patch_tokenizer_pad(tok) is True
    assert tok._pad({}, max_length=4, padding_side="left") == ("padded", 4)
    assert tok._pad({}, max_length=5) == ("padded", 5)
    with pytest.raises(ValueError, match="left"):
        tok._pad({}, max_length=4, padding_side="right")
    assert chatglm3.patch_tokenizer_pad(tok) is False  # already patched: left alone


def test_model_shim_on_stand_in_class_restores_removed_helper() -> None:
    class OldModel:
        def _update_model_kwargs_for_generation(self, outputs, model_kwargs):
            model_kwargs["past_key_values"] = self._extract_past_from_model_output(
                outputs, standardize_cache_format=False
            )
            return model_kwargs

    model = OldModel()
    with pytest.raises(AttributeError):
        model._update_model_kwargs_for_generation(SimpleNamespace(past_key_values="kv"), {})
    assert chatglm3.patch_model(model) is True
    out = model._update_model_kwargs_for_generation(SimpleNamespace(past_key_values="kv"), {})
    assert out == {"past_key_values": "kv"}
    assert chatglm3.patch_model(model) is False


def test_chatglm3_lora_targets() -> None:
    assert chatglm3.LORA_TARGET_MODULES == ["query_key_value"]
