"""The three peft recipes of the paper (Table IV / Section IV), one function each."""

from __future__ import annotations

from typing import Any

from app.evolve.config import TrainConfig


def lora(config: TrainConfig, n_layers: int) -> Any:
    """LoRA: low-rank updates of the attention projections (r 8, alpha 32, dropout 0.1)."""
    from peft import LoraConfig, TaskType

    top = config.lora_top_layers
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        layers_to_transform=list(range(max(0, n_layers - top), n_layers)) if top else None,
    )


def prefix(config: TrainConfig, hidden_size: int) -> Any:
    """Prefix-Tuning: virtual key/values on every layer, produced by a reparameterisation MLP."""
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=True,
        encoder_hidden_size=hidden_size,
    )


def ptuning_v2(config: TrainConfig) -> Any:
    """P-Tuning v2: deep prompts on every layer, trained directly (prefix tuning without the MLP)."""
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=False,
    )


def peft_config(config: TrainConfig, model_config: Any) -> Any:
    if config.method == "lora":
        return lora(config, model_config.num_hidden_layers)
    if config.method == "prefix":
        return prefix(config, model_config.hidden_size)
    return ptuning_v2(config)


def init_deep_prompts(model: Any, tokenizer: Any, text: str) -> None:
    """Start P-Tuning v2's deep prompts as the key/values of real text, not random numbers.

    peft initialises them from N(0, 1), which on a small model replaces the answer with noise and
    takes thousands of steps to undo. Here the virtual tokens start as the base model's own cache
    for ``text`` (repeated to length), so the untrained adapter behaves like the base model with
    that text before the conversation (Li & Liang's initialisation from real words).
    """
    import torch

    config = model.peft_config[model.active_adapter]
    n = config.num_virtual_tokens
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise ValueError("init_deep_prompts needs a non-empty text")
    ids = (ids * (n // len(ids) + 1))[:n]
    with torch.no_grad(), model.disable_adapter():
        cache = model.get_base_model()(
            input_ids=torch.tensor([ids], device=model.device), use_cache=True
        ).past_key_values
        rows = []
        for layer in cache.layers[: config.num_layers]:
            rows += [layer.keys[0].transpose(0, 1), layer.values[0].transpose(0, 1)]
        # (n, layers * 2, kv_heads, head_dim) flattened per virtual token: peft's layout.
        weight = torch.stack(rows, dim=1).reshape(n, -1)
        embedding = model.prompt_encoder[model.active_adapter].embedding.weight
        embedding.copy_(weight.to(embedding.dtype))
