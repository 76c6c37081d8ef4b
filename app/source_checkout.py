"""The benchmarks and experiment reports (``xiaoer bench …``, ``xiaoer report``) live in the
top-level ``benchmarks/`` package of a source checkout, beside ``app/``: the product wheel and the
desktop bundle ship the product only. The commands import them here, lazily."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from app.errors import XiaoerError

CHECKOUT = Path(__file__).resolve().parent.parent
"""The folder holding ``app/`` (and, in a source checkout, ``benchmarks/``)."""


def benchmarks_module(name: str, checkout: Path = CHECKOUT) -> ModuleType:
    """``benchmarks.<name>``, from the source checkout ``app`` runs from; an editable install
    maps only ``app`` itself, so the checkout goes on ``sys.path`` when it has the package."""
    if (checkout / "benchmarks" / "__init__.py").is_file() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", f"benchmarks.{name}"):
            raise
        raise XiaoerError(
            "the benchmarks are not part of this installation: they live in the benchmarks/ "
            "package of a source checkout (git clone, then `make setup` and run xiaoer from there)"
        ) from None
