"""The manager's evolution policy (the ``evolution`` section of the settings file,
``app.settings_file``) and the paper's probe inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.evolve.config import METHODS, Method
from app.evolve.data import MIN_REPLY_CHARS
from app.settings_file import (
    SettingsFileError,
    read_sections,
    settings_path,
    write_section,
    write_sections,
)

PAPER_PROBES = (
    "你好",
    "可以选择快递吗？",
    "520401029636",
    "能便宜点吗？",
    "太烦了，我从昨天就一直等这个快递，都不敢出门。",
    "今天买的话今天发货吗？",
)


@dataclass
class EvolutionSettings:
    """The manager's evolution policy (the settings file's ``evolution`` section). Its
    ``low_score`` is also the desktop's low-score threshold: stored once, here."""

    low_score: float = field(default=0.5, metadata={"help": "Final Score below this → candidate"})
    method: Method = field(default="lora", metadata={"help": "lora, prefix or ptuning-v2"})
    objective: str = field(
        default="sft", metadata={"help": "sft (labels) or kto (labels + 👍/👎 drafts, LoRA)"}
    )
    preset: str = field(default="quick", metadata={"help": "quick (CPU minutes) or paper"})
    steps: int | None = field(default=None, metadata={"help": "override the preset's steps"})
    replay: int = field(default=20, metadata={"help": "earlier labels and corpus pairs mixed in"})
    corpus: str | None = field(default=None, metadata={"help": "JSONL pairs for replay"})
    examples: str | None = field(
        default=None,
        metadata={"help": "the shop's past dialogues (a corpus file): shown to the teacher"},
    )
    shots: int = field(
        default=0,
        metadata={"help": "past dialogues of `examples` in each training prompt and gate draft"},
    )
    holdback: int = field(default=5, metadata={"help": "recent labels kept out of training"})
    holdout: str | None = field(
        default=None,
        metadata={"help": "the shop's held-back pairs (JSONL, kept out of training): gated on"},
    )
    holdout_gate: int = field(
        default=40, metadata={"help": "pairs of `holdout` the gate drafts (always the same ones)"}
    )
    min_label_chars: int = field(
        default=MIN_REPLY_CHARS,
        metadata={"help": "teacher labels and corpus replies shorter than this are not trained on"},
    )
    margin: float = field(default=0.01, metadata={"help": "mean Final gain needed to promote"})
    tolerance: float = field(default=0.15, metadata={"help": "largest drop allowed on one probe"})
    auto_every: int | None = field(default=None, metadata={"help": "evolve after K new labels"})
    probes: list[str] = field(default_factory=lambda: list(PAPER_PROBES))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if not 0 <= self.low_score <= 1:
            raise ValueError("low_score must be in [0, 1]")
        if self.objective not in ("sft", "kto"):
            raise ValueError(f"Unknown objective {self.objective!r}: use sft or kto")
        if self.objective == "kto" and self.method != "lora":
            raise ValueError("KTO preference training is offered for the lora method")
        if min(self.holdback, self.replay, self.min_label_chars, self.shots, self.holdout_gate) < 0:
            raise ValueError(
                "holdback, replay, min_label_chars, shots and holdout_gate must be >= 0"
            )
        if self.shots and not self.examples:
            raise ValueError("shots needs examples: the past dialogues to choose them from")

    @staticmethod
    def path() -> Path:
        """The settings file holding the section."""
        return settings_path()

    @classmethod
    def load(cls) -> EvolutionSettings:
        try:
            raw = read_sections()["evolution"]
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (SettingsFileError, ValueError, TypeError) as exc:
            raise ValueError(f"{cls.path()}: unreadable evolution settings ({exc})") from exc

    def save(self) -> None:
        write_section("evolution", asdict(self))

    @classmethod
    def save_fields(cls, **fields: Any) -> None:
        """Set ``fields`` in the saved section, keeping the others as they are saved now: a long
        run that changes two fields must not put back what the manager changed meanwhile."""
        cls(**{**asdict(cls.load()), **fields})  # the result must still be valid settings
        write_sections({}, {"evolution": fields})
