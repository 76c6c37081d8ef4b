"""Fine-tune the end model in a child process: ``python -m app.evolve.train --config run.json``.

Progress goes to stdout as JSON lines (and to ``train.jsonl`` in the output dir)::

    {"event": "start", "examples": 50, "steps": 60, "trainable_params": 1081344, "resumed_from": 0}
    {"event": "step", "step": 1, "total": 60, "loss": 2.31, "lr": 0.0001, "tok_s": 180.0, "eta_s": 95.0}
    {"event": "done", "adapter_dir": "…/adapter", "steps": 60, "train_s": 98.2, "tok_s": 176.4}

A crash or an out-of-memory here cannot take the app down. SIGTERM (or Ctrl-C) stops after the
current step, writes a checkpoint and exits 130; running the same config again resumes from it.
The exact config is saved as ``config.json`` beside the outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.evolve.config import TrainConfig
from app.evolve.data import (
    IGNORE_INDEX,
    PackedRow,
    TrainingExample,
    batches,
    encode,
    pack,
    read_examples,
)
from app.fsio import atomic_write_text, replace_dir

Emit = Callable[[dict[str, Any]], None]
EXIT_CANCELLED = 130
CHECKPOINT_META = "meta.json"


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(config: TrainConfig) -> str:
    import torch

    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return config.device


def build_model(config: TrainConfig, device: str) -> tuple[Any, Any]:
    """The base model wrapped for training by the run's peft method (or its init adapter)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    from app.engine.conversation import system_prompt
    from app.evolve.base import load_for_training
    from app.evolve.recipes import init_deep_prompts, peft_config

    model, tokenizer = load_for_training(config.base_model, device, config.quantization)
    if config.quantization == "4bit":
        # Non-reentrant checkpointing: the reentrant default is deprecated in torch 2.11.
        model = prepare_model_for_kbit_training(
            model, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    if config.init_adapter:
        model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
        method = {"LORA": "lora"}.get(model.peft_config["default"].peft_type.value, "prefix")
        if (method == "lora") != (config.method == "lora"):
            raise ValueError(f"init_adapter {config.init_adapter} is not a {config.method} adapter")
    else:
        model = get_peft_model(model, peft_config(config, model.config))
        if config.method == "ptuning-v2":
            init_deep_prompts(model, tokenizer, system_prompt("zh"))
    return model, tokenizer


def _collate(items: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids, labels, mask = [], [], []
    for ids, labs in items:
        pad = width - len(ids)
        input_ids.append(ids + [pad_id] * pad)
        labels.append(labs + [IGNORE_INDEX] * pad)
        mask.append([1] * len(ids) + [0] * pad)
    return {
        "input_ids": torch.tensor(input_ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def _collate_packed(row: PackedRow) -> dict[str, Any]:
    import torch

    ids, labels, positions = row
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "position_ids": torch.tensor([positions]),
    }


def packed_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Cross-entropy on the reply tokens of a packed row, the LM head computed only where a reply
    token is predicted (a reply is a small part of a row: the vocabulary projection over every
    position would cost more than the LoRA layers). No attention mask and no cache: transformers
    then reads the sequences' bounds from the restarting positions."""
    import torch

    labels = batch["labels"][0]
    where = torch.nonzero(labels[1:] != IGNORE_INDEX).squeeze(1)  # position t predicts t + 1
    out = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        logits_to_keep=where,
        use_cache=False,
    )
    return torch.nn.functional.cross_entropy(out.logits[0].float(), labels[where + 1])


def default_threads() -> int:
    """The physical cores this process may run on: a second thread on a hyperthread sibling only
    contends for the same core's vector units."""
    import psutil

    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, min(physical, allowed or physical))


def planned_steps(config: TrainConfig, lengths: Sequence[int]) -> int:
    """The run's steps: ``config.steps``, or fewer when ``budget_tokens`` is reached first (the
    data order depends only on the seed, so a resumed run plans the same steps)."""
    if config.budget_tokens is None:
        return config.steps
    per_step = 1 if config.pack_tokens else config.batch_size
    order = batches(len(lengths), per_step, config.seed)
    tokens = 0
    for step in range(1, config.steps + 1):
        tokens += sum(lengths[i] for i in next(order))
        if tokens >= config.budget_tokens:
            return step
    return config.steps


def reply_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Cross-entropy on the reply tokens, computing the LM head only where it is needed.

    The vocabulary projection (151k × 896 for Qwen2.5) over every prompt position is wasted work:
    ``logits_to_keep`` limits it to the tail that holds the reply tokens.
    """
    import torch

    labels = batch["labels"]
    width = labels.shape[1]
    is_label = (labels != IGNORE_INDEX).int()
    first = int(is_label.argmax(dim=1).min())  # earliest reply token in the batch
    keep = width - first
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        logits_to_keep=keep + 1,
    )
    logits = out.logits[:, :-1, :]  # position t predicts token t + 1
    targets = labels[:, first:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def _lr_lambda(config: TrainConfig, steps: int) -> Callable[[int], float]:
    warmup = min(config.warmup_steps, steps - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return factor


def _fingerprint(config: TrainConfig) -> str:
    """What a checkpoint must match to be resumed: the run's config (outputs and pacing aside)."""
    values = asdict(config)
    for key in ("output_dir", "save_every", "threads", "device"):
        values.pop(key)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _save_checkpoint(
    model: Any, optimizer: Any, scheduler: Any, step: int, out: Path, fingerprint: str
) -> None:
    """Written beside, then renamed into place: a kill leaves the old checkpoint or the new."""
    import torch

    target = out / "checkpoint"
    tmp = out / f".checkpoint.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp / "adapter"))
    torch.save(
        {
            "step": step,
            "fingerprint": fingerprint,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        },
        tmp / "state.pt",
    )
    # Read before anything else on resume: a checkpoint of another config is never loaded.
    atomic_write_text(tmp / CHECKPOINT_META, json.dumps({"fingerprint": fingerprint, "step": step}))
    replace_dir(tmp, target)


def _resume(
    model: Any, optimizer: Any, scheduler: Any, out: Path, fingerprint: str, emit: Emit
) -> int:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = out / "checkpoint"
    state_path = folder / "state.pt"
    weights = folder / "adapter" / "adapter_model.safetensors"
    if not (state_path.is_file() and weights.is_file()):
        return 0

    def start_over(why: str) -> int:
        emit({"event": "warning", "message": f"the checkpoint {why}; starting over"})
        shutil.rmtree(folder, ignore_errors=True)
        return 0

    # The config's identity first, from a plain JSON file: nothing else of a checkpoint that is
    # not this run's (or has no such file: an older Xiaoer's) is read.
    try:
        meta = json.loads((folder / CHECKPOINT_META).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return start_over("has no readable fingerprint")
    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint:
        return start_over("is from another config")
    # weights_only: tensors and plain values only; a planted pickle can't run code here.
    try:
        state = torch.load(state_path, weights_only=True)
        tensors = load_file(str(weights))
        parts = {key: state[key] for key in ("step", "optimizer", "scheduler", "torch_rng")}
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, OSError, LookupError) as exc:
        return start_over(f"can't be loaded safely ({type(exc).__name__}: {exc})")
    except (AttributeError, TypeError, ValueError) as exc:  # damaged: not a dict, not a tensor
        return start_over(f"is damaged ({type(exc).__name__}: {exc})")
    if state.get("fingerprint") != fingerprint:
        return start_over("is from another config")
    set_peft_model_state_dict(model, tensors)
    optimizer.load_state_dict(parts["optimizer"])
    scheduler.load_state_dict(parts["scheduler"])
    torch.set_rng_state(parts["torch_rng"])
    return int(parts["step"])


def prompt_budget(config: TrainConfig, example: TrainingExample) -> int:
    """Prompt tokens kept for ``example``: more when it is shown past dialogues (``shots``), so
    that they are not the first thing cut."""
    return (config.shots_max_input or config.max_input) if example.shots else config.max_input


def train(config: TrainConfig, emit: Emit, stop: threading.Event | None = None) -> dict[str, Any]:
    """Run (or resume) the training; returns the final metrics. Raises on bad data or config."""
    import torch

    stop = stop or threading.Event()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    threads = config.threads or default_threads()
    torch.set_num_threads(threads)
    _seed_everything(config.seed)
    device = _device(config)
    examples = read_examples(Path(config.data))
    model, tokenizer = build_model(config, device)
    encoded = [
        encode(ex, tokenizer, prompt_budget(config, ex), config.max_output) for ex in examples
    ]
    rows = pack(encoded, config.pack_tokens, config.seed) if config.pack_tokens else []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total = planned_steps(
        config, [len(r[0]) for r in rows] if rows else [len(e[0]) for e in encoded]
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total))
    fingerprint = _fingerprint(config)
    start = _resume(model, optimizer, scheduler, out, fingerprint, emit)
    emit(
        {
            "event": "start",
            "examples": len(encoded),
            "rows": len(rows) or None,
            "steps": total,
            "trainable_params": sum(p.numel() for p in params),
            "resumed_from": start,
            "device": device,
            "threads": threads,
        }
    )
    preference = None
    if config.objective == "kto":
        from app.evolve.kto import KTOLoss

        preference = KTOLoss(config.kto_beta)
    # Plain labels count as desirable replies for KTO.
    desirable = [ex.desirable is not False for ex in examples]
    order = batches(len(rows) or len(encoded), 1 if rows else config.batch_size, config.seed)
    lengths = [len(r[0]) for r in rows] if rows else [len(e[0]) for e in encoded]
    before = 0  # tokens of the steps a resumed run has done
    for _ in range(start):  # the same data order as an uninterrupted run
        before += sum(lengths[i] for i in next(order))
    model.train()
    tokens = 0
    losses: list[float] = []
    started = time.monotonic()
    step = start
    while step < total:
        if stop.is_set():
            _save_checkpoint(model, optimizer, scheduler, step, out, fingerprint)
            emit({"event": "cancelled", "step": step})
            return {"cancelled": True, "step": step}
        chosen = next(order)
        if rows:
            batch = _collate_packed(rows[chosen[0]])
        else:
            batch = _collate([encoded[i] for i in chosen], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        if rows:
            loss = packed_loss(model, batch)
        elif preference is None:
            loss = reply_loss(model, batch)
        else:
            wanted = torch.tensor([desirable[i] for i in chosen], device=device)
            loss = preference(model, batch, wanted)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += int(batch["labels"].numel() if rows else batch["attention_mask"].sum())
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {step}; lower the lr")
        losses.append(value)
        elapsed = time.monotonic() - started
        rate = (step - start) / elapsed
        emit(
            {
                "event": "step",
                "step": step,
                "total": total,
                "loss": round(value, 4),
                "lr": scheduler.get_last_lr()[0],
                "tokens": before + tokens,
                "tok_s": round(tokens / elapsed, 1),
                "eta_s": round((total - step) / rate, 1),
            }
        )
        if step % config.save_every == 0 and step < total:
            _save_checkpoint(model, optimizer, scheduler, step, out, fingerprint)
        if config.snapshot_every and step % config.snapshot_every == 0:
            model.save_pretrained(str(out / "steps" / str(step)))
    train_s = time.monotonic() - started
    adapter = out / "adapter"
    tmp = out / f".adapter.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    replace_dir(tmp, adapter)
    metrics = {
        "steps": total,
        "resumed_from": start,
        "examples": len(encoded),
        "first_loss": losses[0] if losses else None,
        "final_loss_mean10": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
        "train_s": round(train_s, 2),
        "tokens": tokens,
        "tok_s": round(tokens / train_s, 1) if train_s > 0 else None,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    emit({"event": "done", "adapter_dir": str(adapter), **metrics})
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.evolve.train", description=__doc__)
    parser.add_argument("--config", required=True, type=Path, help="a TrainConfig JSON file")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.load(args.config)
    except (ValueError, TypeError) as exc:
        print(json.dumps({"event": "error", "message": str(exc)}), flush=True)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    log = (Path(config.output_dir) / "train.jsonl").open("a", encoding="utf-8")

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False)
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    try:
        result = train(config, emit, stop)
    except Exception as exc:  # reported as a JSON line: the parent shows it
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        log.close()
    return EXIT_CANCELLED if result.get("cancelled") else 0


if __name__ == "__main__":
    sys.exit(main())
