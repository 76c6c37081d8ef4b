"""All of Xiaoer's settings as one typed object, ``Settings``: the sections of the one settings
file (``app.settings_file``), each validated by its own dataclass when it is loaded.

The parts of the app load the section they need (``app.ui.settings.load_settings``,
``EvolutionSettings.load``, ``app.cloud.providers.load_config``); ``xiaoer settings`` loads them
all, which checks the whole file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.cloud.providers import TeacherConfig, load_config
from app.evolve.settings import EvolutionSettings
from app.settings_file import VERSION, settings_path, write_sections
from app.ui.settings import UiSettings, load_settings


@dataclass(frozen=True)
class Settings:
    desktop: UiSettings
    evolution: EvolutionSettings
    teacher: TeacherConfig

    @classmethod
    def load(cls) -> Settings:
        """Every section, validated (each section's own error says what is wrong)."""
        return cls(load_settings(), EvolutionSettings.load(), load_config())

    def save(self) -> Path:
        """All sections in one write. The low-score threshold is stored once (as the evolution
        section's ``low_score``): the two objects must agree on it."""
        if self.desktop.low_score_threshold != self.evolution.low_score:
            raise ValueError(
                "two low-score thresholds: the desktop's low_score_threshold "
                f"({self.desktop.low_score_threshold}) and evolution.low_score "
                f"({self.evolution.low_score}) are one setting"
            )
        return write_sections(self.sections())

    def sections(self) -> dict[str, dict[str, Any]]:
        """The file's sections as saved (the threshold only in ``evolution``)."""
        desktop = asdict(self.desktop)
        del desktop["low_score_threshold"]
        return {
            "desktop": desktop,
            "evolution": asdict(self.evolution),
            "teacher": asdict(self.teacher),
        }

    def as_json(self) -> dict[str, Any]:
        return {"path": str(settings_path()), "version": VERSION, **self.sections()}
