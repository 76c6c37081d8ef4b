"""Serve a peft LoRA on llama.cpp: export it as a GGUF LoRA adapter for the base GGUF model.

peft saves ``base_model.model.<HF module>.lora_A.weight`` (r, n_in) and ``….lora_B.weight``
(n_out, r); the gguf package's tensor-name map turns the HF module name into llama.cpp's
(``model.layers.0.self_attn.q_proj`` → ``blk.0.attn_q``). Shapes are checked against the base
model, so an adapter trained for another model is refused rather than served.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.engine.gguf_lora import FloatArray, base_tensor_shapes, write_lora_gguf
from app.engine.weights import ModelError

PEFT_PREFIX = "base_model.model."


def lora_pairs(adapter_dir: Path) -> tuple[dict[str, tuple[FloatArray, FloatArray]], float, int]:
    """``{HF module: (A, B)}``, lora_alpha and r of a saved peft LoRA adapter."""
    from safetensors.numpy import load_file

    config_path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{adapter_dir} is not a readable peft adapter ({exc})") from exc
    if config.get("peft_type") != "LORA":
        raise ModelError(
            f"{adapter_dir} is a {config.get('peft_type')} adapter; only LoRA adapters can be "
            f"served by llama.cpp (Prefix-Tuning and P-Tuning v2 use the transformers backend)"
        )
    if config.get("use_rslora") or config.get("use_dora"):
        raise ModelError("rsLoRA and DoRA adapters are not supported by the GGUF export")
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    a_parts: dict[str, FloatArray] = {}
    b_parts: dict[str, FloatArray] = {}
    for key, value in tensors.items():
        name = key.removeprefix(PEFT_PREFIX)
        for marker, bucket in ((".lora_A.weight", a_parts), (".lora_B.weight", b_parts)):
            if name.endswith(marker):
                bucket[name.removesuffix(marker)] = value.astype(np.float32)
    if not a_parts or set(a_parts) != set(b_parts):
        raise ModelError(f"{adapter_dir}: LoRA A/B tensors are missing or unpaired")
    pairs = {module: (a_parts[module], b_parts[module]) for module in sorted(a_parts)}
    return pairs, float(config["lora_alpha"]), int(config["r"])


def export_lora_gguf(adapter_dir: Path, base_gguf: Path, out: Path) -> Path:
    """Write ``out`` (a GGUF LoRA for ``base_gguf``) from a peft LoRA directory; atomic."""
    import gguf

    pairs, alpha, _ = lora_pairs(adapter_dir)
    arch_name, shapes = base_tensor_shapes(base_gguf)
    arch = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}.get(arch_name)
    if arch is None:
        raise ModelError(f"The gguf package does not know the architecture {arch_name!r}")
    n_blocks = 1 + max((int(k.split(".")[1]) for k in shapes if k.startswith("blk.")), default=0)
    names = gguf.get_tensor_name_map(arch, n_blocks)
    gguf_pairs = {}
    for module, (a, b) in pairs.items():
        base_name = names.get_name(module)
        if base_name is None:
            raise ModelError(f"No llama.cpp tensor for the adapted module {module}")
        weight = f"{base_name}.weight"
        expected = shapes.get(weight)
        if expected != (b.shape[0], a.shape[1]):
            raise ModelError(
                f"{module}: the adapter is {b.shape[0]}×{a.shape[1]} but {base_gguf.name} has "
                f"{expected} — the adapter was trained for another model"
            )
        gguf_pairs[weight] = (a, b)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_lora_gguf(out, arch_name, alpha, gguf_pairs)
