"""Check the GPU training path end to end: QLoRA (LoRA on a bitsandbytes 4-bit base) on CUDA.

What it verifies, with the project's own code:

1. ``python -m app.evolve.train`` (the real child process) finishes a LoRA run with
   ``device: cuda, quantization: 4bit``, its loss falls, and it writes the adapter;
2. the base that ``app.evolve.base.load_for_training`` gives for that setting really is 4-bit
   (bitsandbytes ``Linear4bit`` layers, and its memory footprint against bf16);
3. ``app.engine.hf_backend.TransformersBackend`` (cuda, 4bit) serves the saved adapter: it
   loads, decodes greedily, and answers differently with the adapter than without;
4. for comparison, the same run in bf16 (``quantization: none``): tokens/s, loss and GPU memory;
5. with ``--methods lora,prefix,ptuning-v2``, Prefix-Tuning and P-Tuning v2 too (bf16): each
   trains in the child process and ``TransformersBackend`` serves it on CUDA with its own
   decoding loop.

The base model has the exact Qwen2.5-0.5B architecture and the real Qwen tokenizer, but RANDOM
weights: the real weights (hundreds of MB) cannot travel to the GPU machine. So the loss says
nothing about quality; its fall on 16 made-up pairs (overfitting) is the signal that gradients
flow through the 4-bit base into the adapter.

Usage (on a CUDA machine, from the repository root; ``.gpucheck/qwen`` holds the 0.5B's
config.json and tokenizer files, copied from ``app.evolve.base.trainable_dir()``)::

    PYTHONPATH=. python tools/gpu_qlora_check.py --model-files .gpucheck/qwen --out "$OUT"

Without an editable install (``pip install -e .``), ``app.resources`` is missing: the package maps
it to the top-level ``resources/`` folder, so link it first (``ln -s ../resources app/resources``).

``--device cpu --quantizations none --steps 2`` runs the same code without a GPU (a smoke test).
A JSON summary goes to stdout and to ``OUT/gpu_check.json``; each run's log to ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Made-up e-commerce exchanges: (customer turns and agent turns, oldest first; the reply).
PAIRS: list[tuple[list[str], str]] = [
    (["你好，我昨天下的单什么时候发货？"], "亲，您的订单已在今天下午打包，预计明天上午发出哦。"),
    (["这款T恤有XL码吗？"], "有的亲，XL码目前有现货，建议身高175到180的朋友选择。"),
    (["快递到了但是外包装破了"], "非常抱歉亲，麻烦拍一下外包装和商品的照片，我们马上为您处理。"),
    (["可以开发票吗？"], "可以的亲，下单时填写抬头和税号，发货后电子发票会发到您的邮箱。"),
    (["退货运费谁出？"], "亲，七天无理由退货的运费由您承担，质量问题的运费由我们承担哦。"),
    (["这个电饭煲是几升的？"], "这款电饭煲容量是四升，适合三到五口之家使用。"),
    (["能不能便宜一点？"], "亲，现在已经是活动价了，满二百还可以再减二十元哦。"),
    (["我想改一下收货地址"], "好的亲，请把新的地址和电话发给我，订单还没发货可以直接修改。"),
    (["耳机充不进电怎么办？"], "亲，请先换一根数据线试试，如果还是不行，我们为您免费换新。"),
    (["你们周末有人值班吗？"], "有的亲，客服每天早上九点到晚上十点都在线为您服务。"),
    (["这双鞋偏大还是偏小？"], "这款鞋子尺码偏小半码，建议您按平时的尺码拍大一码哦。"),
    (["为什么我的优惠券用不了？"], "亲，这张优惠券需要满一百五十元才能使用，您再凑一件就可以啦。"),
    (["洗衣液是什么香味的？"], "这款洗衣液是淡淡的薰衣草香，洗完衣服留香很持久哦。"),
    (
        ["我收到的颜色不对", "亲，请问您下单的是什么颜色？", "我买的是蓝色，来的是灰色"],
        "真的很抱歉亲，我们马上为您补发蓝色的，灰色的不用寄回了。",
    ),
    (["手机壳适合哪个型号？"], "这款手机壳适用于最新款的手机，下单时请选择对应的型号哦。"),
    (["多久可以退款到账？"], "亲，退款审核通过后，一般一到三个工作日原路退回到您的账户。"),
]


def versions() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    found["cuda_runtime"] = torch.version.cuda
    return found


def gpu_name() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def build_random_base(model_files: Path, target: Path, layers: int | None) -> dict[str, Any]:
    """Qwen2.5-0.5B's architecture with random bf16 weights, saved with the real tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(model_files))
    if layers:
        config.num_hidden_layers = layers  # only for quick smoke tests without a GPU
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:layers]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(target))
    AutoTokenizer.from_pretrained(str(model_files)).save_pretrained(str(target))
    return {
        "model_type": config.model_type,
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "vocab_size": config.vocab_size,
        "params": sum(p.numel() for p in model.parameters()),
    }


def write_data(path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for context, reply in PAIRS:
            fh.write(json.dumps({"context": context, "reply": reply}, ensure_ascii=False) + "\n")


class GpuMemorySampler:
    """Samples nvidia-smi while a child trains: its own usage (by pid) and the GPU's total."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.pid: int | None = None
        self.peak_process_mib = 0
        self.peak_total_mib = 0
        self.baseline_mib = self._total()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _query(args: list[str]) -> list[str]:
        try:
            out = subprocess.run(
                ["nvidia-smi", *args, "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return []
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    def _total(self) -> int:
        rows = self._query(["--query-gpu=memory.used"])
        return int(rows[0]) if rows and rows[0].isdigit() else 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_total_mib = max(self.peak_total_mib, self._total())
            for row in self._query(["--query-compute-apps=pid,used_memory"]):
                pid, _, used = row.partition(",")
                if pid.strip() == str(self.pid) and used.strip().isdigit():
                    self.peak_process_mib = max(self.peak_process_mib, int(used))

    def __enter__(self) -> GpuMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, int | None]:
        return {
            "peak_process_mib": self.peak_process_mib or None,
            "peak_gpu_used_minus_idle_mib": max(0, self.peak_total_mib - self.baseline_mib),
        }


def train_run(
    name: str,
    base_dir: Path,
    data: Path,
    work: Path,
    out: Path,
    args: argparse.Namespace,
    quantization: str,
    method: str = "lora",
) -> dict[str, Any]:
    """One real ``python -m app.evolve.train`` child; its JSON lines, timing and GPU memory."""
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "data": str(data),
        "output_dir": str(run_dir / "out"),
        "method": method,
        "base_model": str(base_dir),
        "device": args.device,
        "quantization": quantization,
        "steps": args.steps,
        "lr": args.lr,
        "warmup_steps": min(5, args.steps - 1),
        "save_every": args.steps,  # no intermediate checkpoints
        "seed": 42,
    }
    if args.targets and method == "lora":
        config["lora_targets"] = args.targets.split(",")
    config_path = run_dir / "run.json"
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    events: list[dict[str, Any]] = []
    step_times: dict[int, float] = {}
    log_path = out / f"train_{name}.log"
    use_gpu = args.device == "cuda"
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log, GpuMemorySampler() as sampler:
        child = subprocess.Popen(
            [sys.executable, "-m", "app.evolve.train", "--config", str(config_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sampler.pid = child.pid
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
                if event["event"] == "step":
                    step_times[event["step"]] = time.monotonic()
        returncode = child.wait()
    wall_s = time.monotonic() - started
    losses = [e["loss"] for e in events if e["event"] == "step"]
    done = next((e for e in events if e["event"] == "done"), None)
    start = next((e for e in events if e["event"] == "start"), None)
    error = next((e["message"] for e in events if e["event"] == "error"), None)
    adapter = Path(done["adapter_dir"]) if done else run_dir / "out" / "adapter"
    # Steady state: steps 10..last, which leaves out loading and the first kernels' warm-up.
    steady = None
    if len(step_times) > 12:
        last = max(step_times)
        steady = round((last - 10) / (step_times[last] - step_times[10]), 2)
    head, tail = losses[:5], losses[-10:]  # single losses vary by example: compare means
    return {
        "method": method,
        "quantization": quantization,
        "returncode": returncode,
        "error": error,
        "finished": returncode == 0 and done is not None,
        "device": start.get("device") if start else None,
        "trainable_params": start.get("trainable_params") if start else None,
        "steps_logged": len(losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "mean_first5": round(sum(head) / len(head), 4) if head else None,
        "mean_last10": round(sum(tail) / len(tail), 4) if tail else None,
        # At least one nat lower: from random weights the loss starts near ln(vocab) ≈ 11.9.
        "loss_fell": bool(head and tail and sum(tail) / len(tail) < sum(head) / len(head) - 1.0),
        "tok_s": done.get("tok_s") if done else None,
        "train_s": done.get("train_s") if done else None,
        "steady_steps_per_s": steady,
        "child_wall_s": round(wall_s, 1),
        "adapter_dir": str(adapter),
        "adapter_files": sorted(p.name for p in adapter.iterdir()) if adapter.is_dir() else [],
        "gpu_memory": sampler.report() if use_gpu else None,
        "losses": losses,
    }


def check_4bit_load(base_dir: Path, device: str) -> dict[str, Any]:
    """Load the base as the trainer does and count bitsandbytes 4-bit layers (vs. a bf16 load)."""
    import torch

    from app.evolve.base import load_for_training

    found: dict[str, Any] = {}
    for quantization in ("4bit", "none"):
        model, _ = load_for_training(str(base_dir), device, quantization)
        kinds: dict[str, int] = {}
        for module in model.modules():
            kind = type(module).__name__
            if kind in ("Linear4bit", "Linear8bitLt", "Linear"):
                kinds[kind] = kinds.get(kind, 0) + 1
        found[quantization] = {
            "linear_layers": kinds,
            "footprint_mib": round(model.get_memory_footprint() / 2**20, 1),
            "weight_dtype": str(model.model.layers[0].self_attn.q_proj.weight.dtype),
        }
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    return found


def check_serving(base_dir: Path, adapter: Path, device: str, quantization: str) -> dict[str, Any]:
    """TransformersBackend loads the base (4-bit), attaches the adapter, and decodes greedily."""
    import torch

    from app.engine.backend import GenerationConfig
    from app.engine.conversation import system_prompt, to_messages
    from app.engine.hf_backend import TransformersBackend
    from app.engine.weights import ModelSource
    from app.evolve.data import as_turns

    backend = TransformersBackend(
        ModelSource("random-qwen2.5-0.5b", base_dir, "hf", "auto"), device, quantization
    )
    greedy = GenerationConfig(temperature=0, max_tokens=24, repeat_penalty=1.0)
    context, reply = PAIRS[0]
    prompt = backend.render(to_messages(as_turns(context), system_prompt("zh")))
    result: dict[str, Any] = {"prompt_tail": prompt[-60:], "trained_reply": reply}
    started = time.monotonic()
    result["base_reply"] = "".join(backend.stream(prompt, greedy, None))
    backend.load_adapter("check", adapter)
    backend.set_adapter("check")
    result["adapter_reply"] = "".join(backend.stream(prompt, greedy, None))
    result["decode_s"] = round(time.monotonic() - started, 2)
    result["adapter_changes_output"] = result["adapter_reply"] != result["base_reply"]
    layers = [type(m).__name__ for m in backend.model.modules()]
    result["served_linear4bit"] = layers.count("Linear4bit")
    result["served_lora_layers"] = sum(1 for m in backend.model.modules() if hasattr(m, "lora_A"))
    backend.set_adapter(None)  # peft's unload path, as an adapter switch in the app does
    result["detached_ok"] = backend.active_adapter is None
    backend.close()
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model-files",
        type=Path,
        default=ROOT / ".gpucheck" / "qwen",
        help="Qwen2.5-0.5B's config.json and tokenizer files (no weights)",
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument(
        "--quantizations", default="4bit,none", help="runs to make, in order; the first is served"
    )
    parser.add_argument(
        "--methods",
        default="lora",
        help="lora, and prefix / ptuning-v2 (trained in bf16 after the LoRA runs, then served)",
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--lr",
        type=float,
        default=2e-3,
        help="high on purpose: random weights, the signal is overfitting",
    )
    parser.add_argument(
        "--targets",
        default=None,
        help="comma-separated LoRA target modules (default: the trainer's)",
    )
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (smoke tests only)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "versions": versions(),
        "gpu": gpu_name(),
        "steps": args.steps,
        "lr": args.lr,
    }
    quantizations = [q.strip() for q in args.quantizations.split(",") if q.strip()]
    work = Path(tempfile.mkdtemp(prefix="xiaoer-gpucheck-"))
    os.environ["XIAOER_HOME"] = str(work / "home")  # no user model registry, no user data
    try:
        base_dir = work / "random-qwen2.5-0.5b"
        summary["base"] = build_random_base(args.model_files, base_dir, args.layers)
        data = work / "pairs.jsonl"
        write_data(data)
        summary["examples"] = len(PAIRS)
        # Training first, in children, so this process holds no GPU memory while they run.
        summary["runs"] = {}
        for quantization in quantizations:
            run = train_run(quantization, base_dir, data, work, args.out, args, quantization)
            summary["runs"][quantization] = run
            print(json.dumps({k: v for k, v in run.items() if k != "losses"}), flush=True)
        others = [m.strip() for m in args.methods.split(",") if m.strip() not in ("", "lora")]
        for method in others:
            run = train_run(method, base_dir, data, work, args.out, args, "none", method)
            summary["runs"][method] = run
            print(json.dumps({k: v for k, v in run.items() if k != "losses"}), flush=True)
        if args.device == "cuda" and "4bit" in quantizations:
            try:
                summary["load_check"] = check_4bit_load(base_dir, args.device)
            except Exception as exc:  # reported, not fatal: the other checks still tell
                summary["load_check"] = {"error": f"{type(exc).__name__}: {exc}"}
        first = summary["runs"][quantizations[0]]
        if first["finished"]:
            try:
                summary["serving"] = check_serving(
                    base_dir, Path(first["adapter_dir"]), args.device, quantizations[0]
                )
            except Exception as exc:
                summary["serving"] = {"error": f"{type(exc).__name__}: {exc}"}
        summary["serving_methods"] = {}
        for method in others:
            run = summary["runs"][method]
            if not run["finished"]:
                continue
            try:
                served = check_serving(base_dir, Path(run["adapter_dir"]), args.device, "none")
            except Exception as exc:
                served = {"error": f"{type(exc).__name__}: {exc}"}
            summary["serving_methods"][method] = served
        runs = summary["runs"]
        if "4bit" in runs and "none" in runs and runs["4bit"]["tok_s"] and runs["none"]["tok_s"]:
            summary["tok_s_4bit_over_bf16"] = round(
                runs["4bit"]["tok_s"] / runs["none"]["tok_s"], 2
            )
        serving = summary.get("serving", {})
        # Prefix-Tuning and P-Tuning v2 only steer attention: on random weights their loss need
        # not fall a whole nat, so for them training to the end and being served is the check.
        summary["ok"] = bool(
            all(r["finished"] and (r["loss_fell"] or r["method"] != "lora") for r in runs.values())
            and all(
                summary["serving_methods"].get(m, {}).get("adapter_reply") is not None
                for m in others
            )
            and serving.get("adapter_reply") is not None
            and (
                args.device != "cuda"
                or "4bit" not in runs
                or summary.get("load_check", {})
                .get("4bit", {})
                .get("linear_layers", {})
                .get("Linear4bit", 0)
                > 0
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        text = json.dumps(summary, ensure_ascii=False, indent=2)
        (args.out / "gpu_check.json").write_text(text, encoding="utf-8")
        print(text, flush=True)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
