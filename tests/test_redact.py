"""The privacy firewall on a labelled set written for this project (tests/fixtures/pii_labelled.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cloud.redact import PLACEHOLDER, redact_for_cloud

FIXTURE = Path(__file__).parent / "fixtures" / "pii_labelled.jsonl"
CASES = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:16] for c in CASES])
def test_labelled_set(case: dict) -> None:
    result = redact_for_cloud(case["text"])
    got = sorted((e.type, e.text) for e in result.entities)
    assert got == sorted((e["type"], e["value"]) for e in case["entities"])
    for ent in case["entities"]:
        assert ent["value"] not in result.redacted, "the value must not leave the device"
    for ent in result.entities:
        assert case["text"][ent.start : ent.end] == ent.text
    assert result.restore(result.redacted) == case["text"]


def test_labelled_set_covers_every_type_and_negatives() -> None:
    types = {e["type"] for c in CASES for e in c["entities"]}
    assert types == {
        "PHONE",
        "ID_CARD",
        "BANK_CARD",
        "ORDER",
        "TRACKING",
        "EMAIL",
        "URL",
        "ADDRESS",
        "NAME",
    }
    assert sum(1 for c in CASES if not c["entities"]) >= 10


def test_same_value_same_placeholder_and_restore_in_reply() -> None:
    r = redact_for_cloud("我叫李娜，电话13700001111，备用13900002222，再说一遍13700001111")
    assert r.redacted == "我叫[NAME_1]，电话[PHONE_1]，备用[PHONE_2]，再说一遍[PHONE_1]"
    reply = "好的[NAME_1]，我们会打[PHONE_2]联系您。[PHONE_9]"
    assert r.restore(reply) == "好的李娜，我们会打13900002222联系您。[PHONE_9]"


def test_jd_masks_pass_through() -> None:
    text = "[订单x]的[电话x]，[ORDERID_10005629] USERID_10054831"
    assert redact_for_cloud(text).redacted == text


@pytest.mark.parametrize("text", ["", "😀" * 1000, "\x00\xff" * 100, "1" * 100_000])
def test_odd_input(text: str) -> None:
    r = redact_for_cloud(text)
    assert isinstance(r.redacted, str)
    assert not PLACEHOLDER.search(r.redacted) or r.entities


def test_cli_jsonl(data_home: Path) -> None:
    lines = "\n".join(
        json.dumps({"text": t}, ensure_ascii=False)
        for t in ["电话13812345678", "你好", "订单号123456789"]
    )
    result = subprocess.run(
        [sys.executable, "-m", "app", "redact", "--jsonl"],
        input=lines + "\nnot json\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert out[0]["redacted"] == "电话[PHONE_1]"
    assert out[0]["entities"] == [{"type": "PHONE", "start": 2, "end": 13}]
    assert out[1] == {"redacted": "你好", "entities": []}
    assert out[2]["entities"][0]["type"] == "ORDER"
    assert "error" in out[3] and "line 4" in out[3]["error"]
    assert result.returncode == 1
