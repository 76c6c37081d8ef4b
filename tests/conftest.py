"""Shared fixtures: a temp data dir per test; the real models, provisioned once per session.

Two tiers (see the Makefile): ``make test`` runs everything; ``make test-fast`` leaves out tests
marked ``slow`` — those that load real model weights (the 0.5B end model, the 1.5B teacher GGUF)
or train on real data. The split cannot drift: a test that is not marked ``slow`` fails when it
asks for a real-weights fixture (``REAL_WEIGHTS_FIXTURES``) or provisions/loads a built-in model
in the test process. The USE and e5 scorers are not "real weights" here: they load in about two
seconds and a tenth of a second, and fast tests use them freely.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from app import paths

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
pytest_plugins = ("pytester",)  # test_tiers.py runs a suite of its own

# The real models as ``make setup`` left them, found before any test changes the environment.
_USER_MODELS_DIR = (
    Path(os.environ[paths.MODELS_ENV]).expanduser()
    if os.environ.get(paths.MODELS_ENV)
    else Path(os.environ.get(paths.HOME_ENV) or platformdirs.user_data_dir(paths.APP_NAME))
    .expanduser()
    .joinpath("models")
)

# Fixtures that hand out real weights: the end model's GGUF and the model loaded from it, the
# local teacher's GGUF (test_teacher_server.py). A fixture built on one of these counts too.
REAL_WEIGHTS_FIXTURES = frozenset({"embedded_model_path", "end_model", "teacher_model_path"})
SLOW_HINT = (
    "it loads real model weights, so it belongs to the slow tier: mark it @pytest.mark.slow "
    "(make test-fast leaves those out; make test runs them)"
)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that is not marked ``slow`` may not ask for real weights (checked before the
    fixtures load them)."""
    used = sorted(REAL_WEIGHTS_FIXTURES & set(getattr(item, "fixturenames", ())))
    if used and item.get_closest_marker("slow") is None:
        pytest.fail(f"{item.nodeid} uses {', '.join(used)}: {SLOW_HINT}", pytrace=False)


@pytest.fixture(autouse=True)
def real_weights_only_when_slow(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Outside the slow tier, provisioning or loading a built-in model in this process fails the
    test (a subprocess it starts is not watched: its test says ``slow`` itself)."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    from app.engine import weights

    calls: list[str] = []

    def refuse(real: Callable[..., Path]) -> Callable[..., Path]:
        def guarded(profile: Any, *args: Any, **kwargs: Any) -> Path:
            if weights.PROFILES.get(getattr(profile, "name", "")) is profile:
                calls.append(f"{real.__name__}({profile.name!r})")
                raise RuntimeError(f"{request.node.nodeid} loads {profile.name}: {SLOW_HINT}")
            return real(profile, *args, **kwargs)

        return guarded

    monkeypatch.setattr(weights, "provision", refuse(weights.provision))
    monkeypatch.setattr(weights, "ensure_verified", refuse(weights.ensure_verified))
    yield
    if calls:  # raised inside the test, perhaps caught there (a UI banner): fail it here too
        pytest.fail(f"{request.node.nodeid} called {', '.join(calls)}: {SLOW_HINT}", pytrace=False)


def _link_provisioned_models(into: Path) -> list[str]:
    """Symlinks to the built-in models ``make setup`` already assembled and verified (its stamp
    matches), with a copy of each stamp: no 1.6 GB assembled and hashed again per run. The
    user's files are only read: a test that re-verifies writes its own stamp copy, and one that
    provisions replaces the link, not the file behind it."""
    from app.engine import weights

    linked = []
    for profile in weights.PROFILES.values():
        source = _USER_MODELS_DIR / profile.filename
        if not weights._stamp_matches(source, profile):
            continue  # not provisioned there (or changed since): provisioned into `into` on use
        try:
            (into / profile.filename).symlink_to(source)
        except OSError:  # no symlinks here (Windows without developer mode): assembled on use
            continue
        stamp = weights._stamp_path(source)
        shutil.copyfile(stamp, weights._stamp_path(into / profile.filename))
        linked.append(profile.name)
    return linked


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One models dir for the whole session: the provisioned models linked in, or (where
    ``make setup`` has not run) assembled here once."""
    from app.engine import weights

    path = tmp_path_factory.mktemp("models")
    linked = _link_provisioned_models(path)
    os.environ[paths.MODELS_ENV] = str(path)
    yield path
    for name in linked:  # nothing in the suite may have written through a link
        profile = weights.PROFILES[name]
        assert weights._stamp_matches(_USER_MODELS_DIR / profile.filename, profile), (
            f"the provisioned {profile.filename} in {_USER_MODELS_DIR} changed during the tests"
        )


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    monkeypatch.setenv(paths.MODELS_ENV, str(models_dir))
    monkeypatch.delenv("XIAOER_DATABASE_URL", raising=False)  # solo mode unless a test says so
    return home


@pytest.fixture(scope="session")
def embedded_model_path(models_dir: Path) -> Path:
    """The real Qwen2.5 0.5B GGUF (the provisioned one, else assembled from the part packages)."""
    from app.engine import weights

    os.environ[paths.MODELS_ENV] = str(models_dir)
    return weights.provision(weights.PROFILES[weights.DEFAULT_PROFILE])


@pytest.fixture(scope="session")
def end_model(embedded_model_path: Path) -> Iterator[object]:
    """The real end model on llama.cpp, loaded once (tests that switch adapters switch back)."""
    from app.engine import EndModel, EngineConfig

    model = EndModel.load(EngineConfig())
    yield model
    model.close()


# Qwen2.5's chat template without its tool-calling branches: the same ChatML prompt.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# The tiny tokenizer has one token per Chinese character and punctuation mark (CJK symbols, the
# unified ideographs, full-width forms), as Qwen's mostly has, and learns words from the app's
# system prompts (Qwen's takes 73 tokens for the Chinese one, this one 32), so prompts fit the
# small context windows the training tests use. Other text is bytes.
TOKENIZER_CHARS = [
    chr(c)
    for lo, hi in ((0x3000, 0x3040), (0x4E00, 0x9FA6), (0xFF00, 0xFF66))
    for c in range(lo, hi)
]


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model with a small byte-level BPE tokenizer in Qwen's ChatML format:
    real transformers and peft, fast, and no real weights (the tokenizer is built here with the
    ``tokenizers`` library rather than read from the 491 MB GGUF, which took ~15 s)."""
    torch = pytest.importorskip("torch", reason="the transformers backend needs the [hf] extra")
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from app.engine.conversation import system_prompt

    out = tmp_path_factory.mktemp("tiny-qwen")
    bpe = Tokenizer(BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        [*TOKENIZER_CHARS, system_prompt("zh"), system_prompt("en")],
        trainers.BpeTrainer(
            vocab_size=100_000,  # no limit: it stops with every word merged (~22,000 tokens)
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=0.5,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)
    return out


def terminal_sigint() -> None:
    """``preexec_fn`` for children a test stops with Ctrl-C (SIGINT), as a terminal would.

    A suite started in the background (``nohup``, ``&``) ignores SIGINT, and children inherit
    that; a Python child then never sees KeyboardInterrupt.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env(models_dir: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env[paths.HOME_ENV] = str(home)
    env[paths.MODELS_ENV] = str(models_dir)
    return env
