"""The desktop app's settings: one typed object, the ``desktop`` section of the settings file
(``app.settings_file``).

Plain Python (no Qt), so the CLI and tests can read and write it. Secrets never go here: API keys
live in the OS keyring (``app.cloud.secrets``); the teacher's provider, model and base URL are the
file's ``teacher`` section (``app.cloud.providers``), and the low-score threshold is stored once,
as the ``evolution`` section's ``low_score``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from app import paths
from app.engine import weights
from app.engine.backend import GenerationConfig
from app.engine.end_model import EngineConfig
from app.errors import XiaoerError
from app.fsio import atomic_write_text
from app.settings_file import SettingsFileError, read_sections, settings_path, write_sections

STATE_FILE = "ui-state.json"

log = logging.getLogger(__name__)

Backend = Literal["llamacpp", "transformers"]
Device = Literal["auto", "cpu", "cuda"]
Quantization = Literal["none", "8bit", "4bit"]
EvolvePolicy = Literal["off", "daily", "after_labels"]
UiLanguage = Literal["system", "zh_CN", "en"]

DEFAULT_QUICK_PHRASES = [
    "亲，您好，请问有什么可以帮您？",
    "亲，请稍等，我帮您查询一下。",
    "感谢您的耐心等待，还有其他可以帮您的吗？",
    "亲，祝您生活愉快，再见！",
]
MAX_SHOTS = 8
"""More past dialogues than this crowd the conversation itself out of a small context window."""


class SettingsError(XiaoerError):
    """The settings file is invalid; the message names the field and what to do."""


@dataclass
class UiSettings:
    """Everything a manager can change in the settings dialog, except the teacher and its key."""

    model: str = field(
        default=weights.DEFAULT_PROFILE,
        metadata={
            "help": "end model: a built-in profile, a registered name, a GGUF file or HF dir"
        },
    )
    backend: Backend = field(default="llamacpp", metadata={"help": "llamacpp or transformers"})
    device: Device = field(default="auto", metadata={"help": "transformers: auto, cpu or cuda"})
    quantization: Quantization = field(
        default="none", metadata={"help": "transformers on CUDA: none, 8bit or 4bit"}
    )
    n_gpu_layers: int = field(default=0, metadata={"help": "llamacpp: layers offloaded to a GPU"})
    n_ctx: int = field(default=2048, metadata={"help": "context window in tokens"})
    prompt_lang: str = field(default="zh", metadata={"help": "system prompt language: zh or en"})
    temperature: float = field(default=0.6, metadata={"help": "0 means greedy decoding"})
    top_p: float = field(default=0.8, metadata={"help": "nucleus sampling mass"})
    max_tokens: int = field(default=256, metadata={"help": "longest draft, in tokens"})
    alpha: float = field(default=0.8, metadata={"help": "weight of similarity in the Final score"})
    theta: float = field(
        default=0.2, metadata={"help": "below this cloud matching, Final = similarity alone"}
    )
    low_score_threshold: float = field(
        default=0.5, metadata={"help": "drafts scoring below this get a teacher label"}
    )
    label_weak_drafts: bool = field(
        default=True, metadata={"help": "ask the teacher for a label on 👎 and on low scores"}
    )
    evolve_policy: EvolvePolicy = field(
        default="off", metadata={"help": "automatic evolution: off, daily, after_labels"}
    )
    evolve_min_labels: int = field(
        default=50, metadata={"help": "after_labels: new labels needed to start a run"}
    )
    ui_language: UiLanguage = field(
        default="system", metadata={"help": "system, zh_CN or en (applies after a restart)"}
    )
    quick_phrases: list[str] = field(default_factory=lambda: list(DEFAULT_QUICK_PHRASES))
    replay_corpus: str = field(
        default="", metadata={"help": "a JDDC 2019 chat file played as arriving customers"}
    )
    replay_interval_s: float = field(
        default=15.0, metadata={"help": "seconds between new replay customers"}
    )
    past_dialogues: str = field(
        default="",
        metadata={
            "help": "the shop's past dialogues (a JDDC 2018 .enc file or dir, a JDDC 2019 chat "
            "file or JSONL pairs); the end model and the teacher are shown the most similar ones"
        },
    )
    shots: int = field(
        default=4, metadata={"help": "past dialogues shown to the end model per draft; 0 = none"}
    )

    def __post_init__(self) -> None:
        for name, kind in (
            ("backend", Backend),
            ("device", Device),
            ("quantization", Quantization),
            ("evolve_policy", EvolvePolicy),
            ("ui_language", UiLanguage),
        ):
            if getattr(self, name) not in get_args(kind):
                raise SettingsError(
                    f"{name} must be one of {', '.join(get_args(kind))}, not {getattr(self, name)!r}"
                )
        for name in ("alpha", "theta", "low_score_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name} must lie in [0, 1], got {value}")
        if not self.model.strip():
            raise SettingsError("model must name a profile, a registered model or a path")
        if self.n_gpu_layers < 0:
            raise SettingsError("n_gpu_layers cannot be negative")
        if self.evolve_min_labels < 1:
            raise SettingsError("evolve_min_labels must be at least 1")
        if self.replay_interval_s <= 0:
            raise SettingsError("replay_interval_s must be positive")
        if not 0 <= self.shots <= MAX_SHOTS:
            raise SettingsError(f"shots must lie in [0, {MAX_SHOTS}], got {self.shots}")
        if not all(isinstance(p, str) for p in self.quick_phrases):
            raise SettingsError("quick_phrases must be a list of texts")
        # The engine's own dataclasses validate the rest (n_ctx, temperature, top_p, max_tokens).
        self.engine_config()
        self.generation_config()

    def engine_config(self) -> EngineConfig:
        try:
            return EngineConfig(
                model=self.model,
                backend=self.backend,
                n_ctx=self.n_ctx,
                n_gpu_layers=self.n_gpu_layers,
                device=self.device,
                quantization=self.quantization,
                lang=self.prompt_lang,
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def generation_config(self) -> GenerationConfig:
        try:
            return GenerationConfig(
                temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2))


def load_settings() -> UiSettings:
    """The saved settings, or the defaults when none are saved. Unknown keys are ignored (logged)."""
    path = settings_path()
    try:
        sections = read_sections()
    except SettingsFileError as exc:
        raise SettingsError(str(exc)) from None
    raw = dict(sections["desktop"])
    if "low_score" in sections["evolution"]:
        raw["low_score_threshold"] = sections["evolution"]["low_score"]
    known = {f.name for f in fields(UiSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        log.warning("ignoring unknown settings %s in %s", unknown, path)
    try:
        return UiSettings(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise SettingsError(f"The settings file {path} is invalid: {exc}") from None


def save_settings(settings: UiSettings) -> Path:
    """The desktop section, and the threshold as the evolution section's ``low_score``."""
    desktop = asdict(settings)
    threshold = desktop.pop("low_score_threshold")
    try:
        return write_sections({"desktop": desktop}, {"evolution": {"low_score": threshold}})
    except SettingsFileError as exc:
        raise SettingsError(str(exc)) from None


@dataclass
class WindowState:
    """What the window restores on the next start: the conversations open in tabs."""

    open_conversations: list[int] = field(default_factory=list)
    current_conversation: int | None = None


def load_state() -> WindowState:
    path = paths.data_dir() / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        ids = [int(i) for i in raw.get("open_conversations", [])]
        current = raw.get("current_conversation")
        return WindowState(ids, int(current) if current is not None else None)
    except FileNotFoundError:
        return WindowState()
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("ignoring an unreadable window state file %s: %s", path, exc)
        return WindowState()


def save_state(state: WindowState) -> None:
    _write_json(paths.data_dir() / STATE_FILE, asdict(state))
