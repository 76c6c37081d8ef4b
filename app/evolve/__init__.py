"""Fine-tuning and online evolution of the end model (no Qt: the UI and the CLI call into this)."""

from app.evolve.loop import Evolution, EvolutionSettings, apply_active_adapter

__all__ = ["Evolution", "EvolutionSettings", "apply_active_adapter"]
