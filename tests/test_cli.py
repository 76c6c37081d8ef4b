"""The `xiaoer` command line against the real embedded model: as a real subprocess where the
process itself matters (the entry point, stdin bytes, Ctrl-C), else in-process through
``app.cli.main`` (the same parser and commands, without a new interpreter per call)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import cli_env, terminal_sigint

HAN = re.compile(r"[\u4e00-\u9fff]")


def xiaoer(args, env, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        **kwargs,
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``xiaoer args`` in this process (the data and models dirs are the test's, via its env)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_draft_prints_a_chinese_reply(embedded_model_path, models_dir, data_home) -> None:
    result = xiaoer(
        ["draft", "可以选择快递吗？", "--seed", "1", "--max-tokens", "48"],
        cli_env(models_dir, data_home),
    )
    assert result.returncode == 0, result.stderr
    assert len(HAN.findall(result.stdout)) >= 3, result.stdout


@pytest.mark.slow
def test_draft_reads_binary_stdin(embedded_model_path, models_dir, data_home) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "draft", "-", "--max-tokens", "4"],
        input=b"\xff\xfe\x00\x01 \xe4\xbd\xa0\xe5\xa5\xbd",
        env=cli_env(models_dir, data_home),
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_draft_refuses_an_empty_message(models_dir, data_home) -> None:
    result = xiaoer(["draft", "   "], cli_env(models_dir, data_home))
    assert result.returncode == 2
    assert "empty" in result.stderr


@pytest.mark.slow
def test_models_verify_and_list(embedded_model_path, models_dir, data_home) -> None:
    env = cli_env(models_dir, data_home)
    result = xiaoer(["models", "verify", "qwen2.5-0.5b"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    listed = json.loads(xiaoer(["models", "list", "--json"], env).stdout)
    default = next(m for m in listed if m["name"] == "qwen2.5-0.5b")
    assert default["status"] == "verified"


def test_models_verify_fails_on_a_wrong_file(tmp_path: Path, capsys, monkeypatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    monkeypatch.setenv("XIAOER_MODELS_DIR", str(models))
    code, out, _ = run(capsys, "models", "verify", "qwen2.5-0.5b")
    assert code == 1
    assert "FAILED" in out and "size" in out


def test_missing_model_file_says_how_to_fix(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "draft", "你好", "--model", str(tmp_path / "nope.gguf"))
    assert code == 1
    assert "does not exist" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_chat_answers_and_ctrl_c_exits_cleanly(embedded_model_path, models_dir, data_home) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "app", "chat", "--max-tokens", "200", "--temperature", "0"],
        env=cli_env(models_dir, data_home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_sigint,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("请详细介绍一下你们店的退换货流程\n")
    proc.stdin.flush()
    # Wait until the reply has started streaming, then interrupt it.
    buf = ""
    deadline = time.monotonic() + 300
    while "小二> " not in buf and time.monotonic() < deadline:
        buf += proc.stdout.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)  # first Ctrl-C: stops the reply
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)  # second Ctrl-C at the prompt: exits
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "[stopped]" in buf + out


@pytest.mark.slow
def test_bench_engine_prints_the_json_keys(embedded_model_path, models_dir, data_home) -> None:
    result = xiaoer(
        ["bench", "engine", "--runs", "1", "--max-tokens", "8"], cli_env(models_dir, data_home)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in (
        "load_s",
        "ttft_s",
        "decode_tok_s",
        "raw_ttft_s",
        "raw_decode_tok_s",
        "decode_ratio",
        "peak_rss_mb",
    ):
        assert report[key] is not None and report[key] > 0, key


def test_score_prints_the_formula_fields(capsys) -> None:
    args = ["score", "--query", "可以选择快递吗？", "--reply", "可以的亲，下单备注快递公司就行。"]
    code, out, err = run(capsys, *args, "--cloud", "可以的，请在下单时备注快递公司。")
    assert code == 0, err
    report = json.loads(out)
    assert set(report) >= {"similarity", "matching", "final", "fallback", "mode", "scorer_versions"}
    if not report["fallback"]:
        expected = 0.8 * report["similarity"] + 0.2 * report["matching"]
        assert abs(report["final"] - expected) < 1e-9
    only = json.loads(run(capsys, *args)[1])
    assert only["mode"] == "match_only" and only["similarity"] is None
    assert only["final"] == only["matching"]
    code, _, err = run(capsys, *args, "--alpha", "1.5")
    assert code == 1 and "alpha" in err


def test_bench_score_prints_the_json_keys(models_dir, data_home) -> None:
    # A subprocess: a benchmark measures a fresh process, not one a suite has been running in
    # (in-process it took 31 s in the fast tier against 10 s alone).
    result = xiaoer(
        ["bench", "score", "--runs", "3", "--batch", "16"], cli_env(models_dir, data_home)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["per_draft_ms"] > 0 and report["pairs_per_s"] > 0


@pytest.mark.slow
def test_teacher_serve_and_ask_through_http(models_dir, data_home) -> None:
    """`xiaoer teacher serve` (the real 1.5B local teacher) + `xiaoer teacher ask` over loopback."""
    from app.engine import weights as engine_weights

    engine_weights.provision(engine_weights.PROFILES["qwen2.5-1.5b"])
    env = cli_env(models_dir, data_home)
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "app", "teacher", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_sigint,
    )
    try:
        assert server.stdout
        line = server.stdout.readline()
        assert "ready at http://127.0.0.1:" in line, line + (
            server.stderr.read() if server.poll() else ""
        )
        result = xiaoer(["teacher", "ask", "可以选择快递吗？", "--show-sent"], env)
        assert result.returncode == 0, result.stderr
        assert len(HAN.findall(result.stdout)) >= 2, result.stdout
        assert "可以选择快递吗" in result.stderr  # what was sent is shown
        status = json.loads(xiaoer(["teacher", "status"], env).stdout)
        assert status["local_server"].startswith("http://127.0.0.1:")
        assert next(iter(status["usage"].values()))["calls"] == 1
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert server.returncode == 0
