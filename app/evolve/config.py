"""Training configuration: one dataclass, saved next to every run's outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from app.engine import weights
from app.fsio import atomic_write_text

Method = Literal["lora", "prefix", "ptuning-v2"]
METHODS: tuple[Method, ...] = ("lora", "prefix", "ptuning-v2")

# Table IV of the paper (ChatGLM3-6B on a GPU).
PAPER_PRESET: dict[str, Any] = {
    "max_input": 256,
    "max_output": 512,
    "lr": 5e-5,
    "batch_size": 1,
    "steps": 30_000,
    "save_every": 1_000,
}
# Moves the 0.5B measurably within minutes on 2 CPU cores: short sequences, few steps, and
# learning rates that suit each method (prompt parameters need a much larger one than LoRA).
# LoRA adapts only the top 8 layers there, so the backward pass stops early (~1.8× faster).
QUICK_PRESET: dict[str, Any] = {
    "max_input": 160,
    "max_output": 48,
    "batch_size": 1,
    "steps": 40,
    "save_every": 10,
    "warmup_steps": 4,
    "lora_top_layers": 8,
}
# Prompts that hold past dialogues (``--shots``) need room for them: with 4, the median JDDC 2018
# training prompt grows from 190 to 330 tokens, and 9 in 10 fit in 448.
SHOTS_MAX_INPUT = 448
QUICK_LR: dict[Method, float] = {"lora": 3e-4, "prefix": 1e-3, "ptuning-v2": 2e-3}
CONTINUE_LR_FACTOR = 1 / 3
"""A round that continues from the active adapter trains at a third of the preset's rate. At the
full rate, 151 labels on top of the warm start lost −0.035 ± 0.029 of its similarity to the
agents; at a third (with the history replayed as much as the new labels) the round kept it
(+0.003 ± 0.027; docs/experiments/2026-12-07-warm-start.md). Measured with LoRA; Prefix-Tuning
and P-Tuning v2 rounds continue at the same fraction of their own rates, unmeasured."""
PRESETS = {"paper": PAPER_PRESET, "quick": QUICK_PRESET}


@dataclass
class TrainConfig:
    """One fine-tuning run of the end model (``python -m app.evolve.train --config run.json``)."""

    data: str = field(metadata={"help": "JSON lines of {context: [turns…], reply: …}"})
    output_dir: str = field(metadata={"help": "adapter, checkpoints, log and config go here"})
    method: Method = field(default="lora", metadata={"help": "lora, prefix or ptuning-v2"})
    base_model: str = field(default=weights.DEFAULT_PROFILE, metadata={"help": "profile or path"})
    objective: Literal["sft", "kto"] = field(
        default="sft", metadata={"help": "sft: learn the replies; kto: learn from 👍/👎"}
    )
    kto_beta: float = field(default=0.1, metadata={"help": "KTO: how far from the reference"})
    init_adapter: str | None = field(
        default=None, metadata={"help": "a peft adapter dir to continue from (same method)"}
    )
    steps: int = field(default=60, metadata={"help": "optimizer steps"})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (linear decay)"})
    warmup_steps: int = field(default=5, metadata={"help": "linear warm-up steps"})
    batch_size: int = field(default=1, metadata={"help": "examples per step"})
    max_input: int = field(default=160, metadata={"help": "prompt tokens kept (oldest cut)"})
    max_output: int = field(default=64, metadata={"help": "reply tokens kept"})
    shots_max_input: int | None = field(
        default=None,
        metadata={"help": "prompt tokens kept for examples shown past dialogues (None: max_input)"},
    )
    seed: int = field(default=42, metadata={"help": "fixes data order, init and dropout"})
    save_every: int = field(default=20, metadata={"help": "checkpoint interval in steps"})
    snapshot_every: int | None = field(
        default=None, metadata={"help": "also keep the adapter every N steps (steps/N/)"}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "module names LoRA adapts"},
    )
    lora_top_layers: int | None = field(
        default=None, metadata={"help": "adapt only the top N layers (None: all)"}
    )
    num_virtual_tokens: int = field(default=128, metadata={"help": "prefix / P-Tuning v2 length"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "where"})
    quantization: Literal["none", "4bit"] = field(
        default="none", metadata={"help": "4bit = QLoRA through bitsandbytes (CUDA only)"}
    )
    threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads; None = the physical cores this process may use"},
    )
    pack_tokens: int | None = field(
        default=None,
        metadata={
            "help": "pack examples into rows of up to N tokens, each its own sequence (no padding); "
            "a step is one row. None: batch_size examples a step, padded"
        },
    )
    budget_tokens: int | None = field(
        default=None,
        metadata={"help": "stop once this many tokens were trained on (steps: an upper bound)"},
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        for name in ("steps", "batch_size", "max_input", "max_output", "save_every", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.objective not in ("sft", "kto"):
            raise ValueError(f"Unknown objective {self.objective!r}: use sft or kto")
        if self.objective == "kto" and self.method != "lora":
            raise ValueError("KTO preference training is offered for the lora method")
        if self.quantization == "4bit" and self.method != "lora":
            raise ValueError("4-bit training (QLoRA) is for the lora method")
        if self.shots_max_input is not None and self.shots_max_input < self.max_input:
            raise ValueError("shots_max_input must be at least max_input")
        if self.pack_tokens is not None:
            if self.pack_tokens < max(self.max_input, self.shots_max_input or 0) + self.max_output:
                raise ValueError("pack_tokens must hold one whole example (max_input + max_output)")
            if self.objective != "sft":
                raise ValueError("packing is for sft: KTO compares whole sequences")
        if self.budget_tokens is not None and self.budget_tokens < 1:
            raise ValueError("budget_tokens must be at least 1")

    @classmethod
    def from_preset(cls, preset: str, method: Method, **overrides: Any) -> TrainConfig:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
        values = dict(PRESETS[preset])
        if preset == "quick":
            values["lr"] = QUICK_LR[method]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(method=method, **values)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), ensure_ascii=False, indent=2))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable training config ({exc})") from exc
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown settings {', '.join(unknown)}")
        return cls(**raw)
