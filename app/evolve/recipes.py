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
