"""LoRA adapters in llama.cpp's GGUF form.

llama.cpp reads an adapter as a GGUF file of type ``adapter`` / ``lora`` for one architecture, with
a pair of tensors per adapted weight: ``<weight name>.lora_a`` of numpy shape (r, n_in) and
``<weight name>.lora_b`` of shape (n_out, r) — the same layout as peft's ``lora_A``/``lora_B``.
The effective update is ``alpha / r * B @ A``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.fsio import replace_file

FloatArray = npt.NDArray[np.float32]


def base_tensor_shapes(model_path: Path) -> tuple[str, dict[str, tuple[int, int]]]:
    """The architecture name and (n_out, n_in) of every 2-D weight in a GGUF model."""
    from gguf import GGUFReader

    reader = GGUFReader(str(model_path))
    field = reader.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode("utf-8")
    shapes = {}
    for tensor in reader.tensors:
        dims = [int(d) for d in tensor.shape]  # ggml order: ne0 (inputs) first
        if len(dims) == 2:
            shapes[tensor.name] = (dims[1], dims[0])
    return arch, shapes


def write_lora_gguf(
    path: Path,
    arch: str,
    alpha: float,
    pairs: Mapping[str, tuple[FloatArray, FloatArray]],
) -> Path:
    """Write ``{weight name: (A (r, n_in), B (n_out, r))}`` as a GGUF LoRA adapter, atomically."""
    from gguf import GGUFWriter

    if not pairs:
        raise ValueError("A LoRA adapter needs at least one adapted weight")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = GGUFWriter(str(tmp), arch)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name, (a, b) in pairs.items():
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(f"{name}: A {a.shape} and B {b.shape} do not form a LoRA pair")
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        replace_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
