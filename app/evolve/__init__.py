"""Fine-tuning and online evolution of the end model (no Qt: the UI and the CLI call into this)."""

from app.evolve.loop import Evolution
from app.evolve.promotion import apply_active_adapter
from app.evolve.settings import EvolutionSettings

__all__ = ["Evolution", "EvolutionSettings", "apply_active_adapter"]
