"""Benchmarks and experiment reports: not part of the product package (``app``), so the wheel and
the desktop bundle leave them out. ``xiaoer bench TARGET`` and ``xiaoer report`` import them
lazily from a source checkout (``app/source_checkout.py``); each benchmark prints one JSON object,
with a baseline measured in the same run. docs/measurements.md has the commands and the tables."""
