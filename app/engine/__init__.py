"""The end model engine. Plain Python: nothing here imports Qt."""

from app.engine.backend import GenerationConfig
from app.engine.conversation import EmptyMessageError, FitReport, Turn
from app.engine.end_model import EndModel, EngineConfig
from app.engine.weights import ModelError

__all__ = [
    "EmptyMessageError",
    "EndModel",
    "EngineConfig",
    "FitReport",
    "GenerationConfig",
    "ModelError",
    "Turn",
]
