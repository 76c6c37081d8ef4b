"""``xiaoer bench evolve``: one evolution round of N labels on the 0.5B with the quick preset.

Stages are timed separately (train, export, gate, swap); the training throughput is compared with
the same steps written plainly with transformers + peft (full-sequence logits, the model's own
loss), measured in the same run. Works in a temporary data dir; the user's store is not touched.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from app import paths

DEFAULT_CORPUS = Path("../shared/data/jddc2018/train.enc")


def _labels_store(n: int, corpus: Path) -> Any:
    from app.evolve.evaluate import read_pairs
    from app.store import open_store

    if not corpus.is_file():
        raise FileNotFoundError(
            f"bench evolve needs JDDC 2018 pairs for its labels: {corpus} is missing "
            f"(pass --corpus PATH/train.enc)"
        )
    pairs = read_pairs(corpus, corpus.with_suffix(".dec"), limit=n)
    store = open_store()
    with store.session() as session:
        customer = store.get_or_create_customer(session, "bench")
        for pair in pairs:
            conversation = store.open_conversation(session, customer.id, "bench")
            message = None
            for i, text in enumerate(pair.context):
                latest = (len(pair.context) - 1 - i) % 2 == 0
                message = store.add_message(
                    session, conversation.id, "customer" if latest else "agent", text
                )
            assert message is not None
            draft = store.add_draft(
                session,
                message.id,
                "好的",
                model_profile="bench",
                latency_ms=0,
                prompt_tokens=0,
                completion_tokens=0,
            )
            store.record_rating(session, draft.id, thumbs_up=False, sent_text=pair.reply)
    return store


def plain_baseline_tok_s(config: Any, steps: int) -> float:
    """Tokens/s of the same LoRA steps written plainly: transformers + peft, model(**batch).loss."""
    import torch
    from peft import get_peft_model

    from app.evolve.base import load_for_training
    from app.evolve.data import batches, encode, read_examples
    from app.evolve.recipes import peft_config
    from app.evolve.train import _collate

    torch.manual_seed(config.seed)
    model, tokenizer = load_for_training(config.base_model)
    model = get_peft_model(model, peft_config(config, model.config))
    examples = read_examples(Path(config.data))
    encoded = [encode(ex, tokenizer, config.max_input, config.max_output) for ex in examples]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    model.train()
    order = batches(len(encoded), config.batch_size, config.seed)
    tokens, started = 0, time.monotonic()
    for _ in range(steps):
        batch = _collate([encoded[i] for i in next(order)], tokenizer.pad_token_id or 0)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.monotonic() - started)


def bench_evolve(
    labels: int = 50, steps: int | None = None, corpus: Path = DEFAULT_CORPUS
) -> dict[str, Any]:
    from app.engine.end_model import EndModel, EngineConfig
    from app.evolve import Evolution, EvolutionSettings, apply_active_adapter
    from app.evolve.config import TrainConfig

    corpus = corpus.resolve()
    models_dir = paths.models_dir()
    with tempfile.TemporaryDirectory(prefix="xiaoer-bench-evolve-") as home:
        old = {k: os.environ.get(k) for k in (paths.HOME_ENV, paths.MODELS_ENV)}
        os.environ[paths.HOME_ENV] = home
        os.environ[paths.MODELS_ENV] = str(models_dir)
        try:
            store = _labels_store(labels, corpus)
            settings = EvolutionSettings(holdback=5, margin=-1.0, tolerance=1.0, steps=steps)
            evo = Evolution(store, settings)
            evo.fetch_labels()
            examples, held = evo.training_set()
            timings: dict[str, float] = {}
            events: list[dict[str, Any]] = []
            t0 = time.monotonic()
            version = evo.train(examples, events.append)
            timings["train_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            evo.export(version)
            timings["export_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            gate = evo.gate(version, held)
            timings["gate_s"] = time.monotonic() - t0
            model = EndModel.load(EngineConfig())
            t0 = time.monotonic()
            evo.promote(version)
            apply_active_adapter(model, store)
            timings["swap_s"] = time.monotonic() - t0
            model.close()
            done = next(e for e in reversed(events) if e.get("event") == "done")
            config = TrainConfig.load(Path(evo.adapters()[-1]["path"]) / "config.json")
            baseline_steps = min(10, config.steps)
            baseline = plain_baseline_tok_s(config, baseline_steps)
            store.close()
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "labels": labels,
        "train_examples": len(examples),
        "steps": config.steps,
        "total_s": round(sum(timings.values()), 1),
        **{k: round(v, 2) for k, v in timings.items()},
        "train_tok_s": done["tok_s"],
        "baseline_train_tok_s": round(baseline, 1),
        "baseline_steps": baseline_steps,
        "train_ratio": round(done["tok_s"] / baseline, 3),
        "peak_rss_mb": round(max(child_kb, self_kb) / 1024),
        "gate_promoted": gate.promoted,
        "cpu_count": os.cpu_count(),
    }


def bench_onboard(
    pairs: int = 400, steps: int = 6, corpus: Path = DEFAULT_CORPUS
) -> dict[str, Any]:
    """``xiaoer bench onboard``: the warm start's training speed (packed rows, the LM head only on
    reply tokens, the physical cores' threads) against a plain transformers + peft loop on the
    same cleaned pairs (padded batches of as many examples as a packed row holds on average,
    ``model(**batch).loss``), both counting the tokens of the examples, not the padding."""
    from dataclasses import replace

    from app.evolve.data import encode, pack, write_examples
    from app.evolve.evaluate import read_pairs
    from app.evolve.onboard import (
        ONBOARD_LORA_R,
        ONBOARD_LORA_TARGETS,
        ONBOARD_MAX_INPUT,
        ONBOARD_MAX_OUTPUT,
        PACK_TOKENS,
        clean_history,
    )
    from app.evolve.train import default_threads, train

    corpus = corpus.resolve()
    if not corpus.is_file():
        raise FileNotFoundError(f"bench onboard needs JDDC 2018 pairs: {corpus} is missing")
    examples, _ = clean_history(read_pairs(corpus, corpus.with_suffix(".dec"), limit=pairs))
    models_dir = paths.models_dir()
    with tempfile.TemporaryDirectory(prefix="xiaoer-bench-onboard-") as home:
        old = {k: os.environ.get(k) for k in (paths.HOME_ENV, paths.MODELS_ENV)}
        os.environ[paths.HOME_ENV] = home
        os.environ[paths.MODELS_ENV] = str(models_dir)
        try:
            from transformers import AutoTokenizer

            from app.evolve.base import trainable_dir
            from app.evolve.config import QUICK_PRESET, TrainConfig

            data = Path(home) / "data.jsonl"
            write_examples(examples, data)
            config = TrainConfig(
                data=str(data),
                output_dir=str(Path(home) / "run"),
                pack_tokens=PACK_TOKENS,
                max_input=ONBOARD_MAX_INPUT,
                max_output=ONBOARD_MAX_OUTPUT,
                steps=steps,
                warmup_steps=1,
                save_every=steps + 1,
                lora_top_layers=QUICK_PRESET["lora_top_layers"],
                lora_r=ONBOARD_LORA_R,
                lora_targets=list(ONBOARD_LORA_TARGETS),
            )
            tokenizer = AutoTokenizer.from_pretrained(str(trainable_dir(config.base_model)))
            encoded = [
                encode(ex, tokenizer, config.max_input, config.max_output) for ex in examples
            ]
            rows = pack(encoded, PACK_TOKENS, config.seed)
            per_row = max(1, round(len(encoded) / len(rows)))
            metrics = train(config, lambda event: None)
            plain = replace(config, pack_tokens=None, batch_size=per_row)
            baseline = plain_baseline_tok_s(plain, steps)
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    filled = sum(len(r[0]) for r in rows) / (len(rows) * PACK_TOKENS)
    return {
        "pairs": len(examples),
        "steps": steps,
        "rows": len(rows),
        "examples_per_row": per_row,
        "row_fill": round(filled, 3),
        "threads": default_threads(),
        "train_tok_s": metrics["tok_s"],
        "baseline_train_tok_s": round(baseline, 1),
        "baseline_batch": per_row,
        "train_ratio": round(metrics["tok_s"] / baseline, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpu_count": os.cpu_count(),
    }
