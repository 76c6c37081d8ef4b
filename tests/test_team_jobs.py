"""Team mode's learning loop on a real PostgreSQL server: a round enqueued by a manager's desktop
is run by the worker on procrastinate's queue, its adapter is published with its hash and reaches
a third desktop, which checks it and hot-swaps it; tampered files are refused, a rollback spreads
the same way, and an agent's desktop can neither promote nor start a round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
import pytest
from sqlalchemy import select, text

from app.evolve.promotion import AdapterDamaged, apply_active_adapter, sha256_of
from app.evolve.settings import EvolutionSettings
from app.store import AdapterVersion, Store, open_store
from app.store.models import PublishedAdapter, TeamRole
from app.team import adapters, jobs, roles
from app.team.watch import AdapterWatcher
from tests.doubles import MemoryKeyring, ScriptedBackend

pytest_plugins = ("tests.postgres",)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shop(pg_url: str) -> Iterator[Store]:
    with open_store(pg_url) as store:
        yield store


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'desktop.db'}") as store:
        yield store


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def manager(shop: Store, memory_keyring: MemoryKeyring) -> str:
    """The shop's manager secret, kept in this desktop's (in-memory) keyring."""
    secret = roles.set_manager_secret(shop)
    roles.save_secret(shop, secret)
    return secret


@dataclass
class FakeModel:
    """Stands in for a running EndModel: what ``apply_active_adapter`` swaps."""

    backend: ScriptedBackend = field(default_factory=ScriptedBackend)
    swaps: list[str | None] = field(default_factory=list)

    def load_adapter(self, name: str, path: Path) -> None:
        self.backend.load_adapter(name, path)

    def set_adapter(self, name: str | None) -> None:
        self.backend.set_adapter(name)
        self.swaps.append(name)


def make_adapter(shop: Store, root: Path, version: str) -> Path:
    """A LoRA version trained elsewhere: its GGUF file and its hash, as export leaves them."""
    run = root / version
    run.mkdir(parents=True)
    gguf = run / "adapter.gguf"
    gguf.write_bytes(os.urandom(4096))
    with shop.session() as session:
        session.add(
            AdapterVersion(
                version=version,
                method="lora",
                base_model="qwen2.5-0.5b",
                path=str(run),
                metrics={"sha256": sha256_of(gguf)},
                status="candidate",
            )
        )
    return gguf


def local_active(desktop: Store) -> str | None:
    with desktop.session() as session:
        row = desktop.active_adapter(session)
        return row.version if row else None


# --- the manager role ---------------------------------------------------------------------------


def test_only_a_hash_of_the_manager_secret_is_in_the_shop(shop: Store, manager: str) -> None:
    with shop.session() as session:
        stored = session.scalar(select(TeamRole.secret_hash))
        dump = " ".join(
            str(v) for row in session.execute(text("SELECT * FROM team_roles")) for v in row
        )
    assert stored and stored.startswith("scrypt$") and manager not in dump
    assert roles.saved_secret(shop) == manager, "kept in the keyring"
    assert roles.is_manager(shop, manager) and not roles.is_manager(shop, manager + "x")
    with pytest.raises(roles.NotManager, match="current one"):
        roles.set_manager_secret(shop)  # an agent can't take the role over
    changed = roles.set_manager_secret(shop, current=manager)
    assert roles.is_manager(shop, changed) and not roles.is_manager(shop, manager)


def test_an_agent_can_neither_promote_roll_back_nor_start_a_round(
    shop: Store, pg_url: str, manager: str, tmp_path: Path
) -> None:
    make_adapter(shop, tmp_path, "v1")
    adapters.publish(shop, "v1")
    for secret in (None, "guess"):
        with pytest.raises(roles.NotManager):
            adapters.promote(shop, "v1", secret)
        with pytest.raises(roles.NotManager):
            adapters.rollback(shop, secret, "base")
        with pytest.raises(roles.NotManager):
            jobs.enqueue(pg_url, "evolve", shop=shop, secret=secret)
    assert adapters.active_version(shop) is None
    with shop.session() as session:
        assert session.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 0
    adapters.promote(shop, "v1", manager)
    assert adapters.active_version(shop)["version"] == "v1"  # type: ignore[index]


# --- adapters reach every desktop ---------------------------------------------------------------


def test_a_promotion_and_a_rollback_reach_a_running_desktop(
    shop: Store, pg_url: str, desktop: Store, manager: str, tmp_path: Path
) -> None:
    for version in ("v1", "v2"):
        make_adapter(shop, tmp_path / "worker", version)
        adapters.publish(shop, version)
    model = FakeModel()
    seen: list[str | None] = []
    changed = threading.Event()

    def swap(version: str | None) -> None:
        apply_active_adapter(model, desktop)  # what the window does: checks the hash, swaps
        seen.append(version)
        changed.set()

    # Its own connection, as another desktop; polling far slower than the test: NOTIFY brings it.
    with open_store(pg_url) as desktops_view:
        watcher = AdapterWatcher(
            desktops_view, desktop, swap, poll_s=600, root=tmp_path / "desktop-adapters"
        )
        watcher.start()
        try:
            assert changed.wait(30) and seen == [None], "the shop serves the base model at first"
            for step, expected in (
                (lambda: adapters.promote(shop, "v1", manager), "v1"),
                (lambda: adapters.promote(shop, "v2", manager), "v2"),
                (lambda: adapters.rollback(shop, manager), "v1"),
                (lambda: adapters.rollback(shop, manager, "base"), None),
            ):
                changed.clear()
                step()
                assert changed.wait(30), f"the desktop did not follow to {expected}"
                assert seen[-1] == expected and local_active(desktop) == expected
                assert model.backend.active_adapter == expected
        finally:
            watcher.stop()
    served = model.backend.adapters["v2"]
    assert served.parent.parent == tmp_path / "desktop-adapters", "the desktop's own copy"
    with shop.session() as session:
        assert sha256_of(served) == shop.get_adapter(session, "v2").metrics["sha256"]  # type: ignore[union-attr]


def test_tampered_adapter_files_are_refused(
    shop: Store, desktop: Store, manager: str, tmp_path: Path
) -> None:
    make_adapter(shop, tmp_path, "v1")
    make_adapter(shop, tmp_path, "v2")
    adapters.publish(shop, "v1")
    adapters.publish(shop, "v2")
    adapters.promote(shop, "v1", manager)
    errors: list[Exception] = []
    watcher = AdapterWatcher(shop, desktop, on_error=errors.append, root=tmp_path / "desktop")
    assert watcher.check() == "v1"

    def tamper(version: str) -> None:
        with shop.session() as session:
            row = shop.get_adapter(session, version)
            blob = session.scalar(
                select(PublishedAdapter).where(PublishedAdapter.adapter_version_id == row.id)  # type: ignore[union-attr]
            )
            assert blob is not None
            blob.data = blob.data[:-1] + bytes([blob.data[-1] ^ 1])

    tamper("v2")
    with pytest.raises(AdapterDamaged, match="damaged"):
        adapters.promote(shop, "v2", manager)  # the manager's promotion checks the bytes
    assert adapters.active_version(shop)["version"] == "v1"  # type: ignore[index]
    # Tampered behind the manager's back, in the database itself: every desktop refuses it.
    with shop.session() as session:
        shop.set_active_adapter(session, "v2")
    with pytest.raises(AdapterDamaged):
        watcher.check()
    assert local_active(desktop) == "v1", "the desktop keeps the adapter it had"
    assert not (tmp_path / "desktop" / "v2").exists(), "nothing of the bad copy is kept"
    # Files changed on the worker after export are never published.
    make_adapter(shop, tmp_path, "v3").write_bytes(b"changed after export")
    with pytest.raises(AdapterDamaged):
        adapters.publish(shop, "v3")


# --- jobs and the worker ------------------------------------------------------------------------


class FakeScorer:
    """Final = the share of the reference's characters the reply has (no models)."""

    def score_many(self, items: Any) -> Iterator[Any]:
        @dataclass
        class Score:
            final: float

        for item in items:
            ref = item.cloud_reply or ""
            yield Score(len(set(item.reply) & set(ref)) / max(1, len(set(ref))))


def add_edited_draft(shop: Store, customer: str, draft: str, sent: str) -> None:
    """A draft an agent rewrote before sending (on some desktop, synced to the shop)."""
    with shop.session() as session:
        who = shop.get_or_create_customer(session, f"c-{customer}")
        conv = shop.open_conversation(session, who.id, "manual")
        msg = shop.add_message(session, conv.id, "customer", customer)
        row = shop.add_draft(
            session,
            msg.id,
            draft,
            model_profile="qwen2.5-0.5b",
            latency_ms=5,
            prompt_tokens=10,
            completion_tokens=5,
        )
        shop.record_rating(session, row.id, thumbs_up=False, sent_text=sent)


def test_a_round_enqueued_by_a_manager_runs_on_the_worker_and_reaches_a_desktop(
    shop: Store,
    pg_url: str,
    desktop: Store,
    manager: str,
    tiny_qwen_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.evolve.gate as gate_module
    import app.evolve.loop as loop_module

    for i, (question, sent) in enumerate(
        [
            ("什么时候发货？", "亲，订单预计明天发货哦"),
            ("能便宜点吗？", "亲，已经是最低价了哦"),
            ("到哪了？", "亲，订单预计明天送达哦"),
            ("可以退吗？", "亲，七天无理由退货哦"),
        ]
    ):
        add_edited_draft(shop, f"{question}{i}", "嗯", sent)

    def export(store: Store, version: str, base_model: str) -> Path:
        """The GGUF export needs a GGUF base; the tiny model's peft weights stand in."""
        with store.session() as session:
            row = store.get_adapter(session, version)
            assert row is not None
            target = Path(row.path) / "adapter.gguf"
            target.write_bytes((Path(row.path) / "adapter/adapter_model.safetensors").read_bytes())
            row.metrics = {**row.metrics, "sha256": sha256_of(target)}
        return target

    def draft(adapter, items, base_model, generation=None, on_reply=None):  # type: ignore[no-untyped-def]
        return ["亲，订单预计明天送达哦" if adapter else "嗯" for _ in items]

    monkeypatch.setattr(loop_module, "export_candidate", export)
    monkeypatch.setattr(gate_module, "draft_replies", draft)
    settings = EvolutionSettings(holdback=2, min_label_chars=0, steps=2, replay=0)

    def tiny_round(store: Store, args: dict[str, Any]) -> jobs.ShopEvolution:
        steps = int(args.get("steps") or settings.steps)
        return jobs.ShopEvolution(
            store,
            EvolutionSettings(**{**settings.__dict__, "steps": steps}),
            scorer=FakeScorer(),
            base_model=str(tiny_qwen_dir),
        )

    # A second desktop, another process: "Evolve now" with the manager secret from its keyring
    # (here the environment stands in for that process's keyring).
    env = {**os.environ, "XIAOER_DATABASE_URL": pg_url, roles.SECRET_ENV: manager}
    queued = subprocess.run(
        [sys.executable, "-m", "app", "team", "enqueue", "evolve", "--steps", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = json.loads(queued.stdout)["job"]
    again = jobs.enqueue(pg_url, "evolve", shop=shop, secret=manager)
    assert again == job_id, "a round already waiting is not queued twice"

    # The third desktop follows the shop's adapter, on its own connection.
    model = FakeModel()
    swapped = threading.Event()

    def swap(version: str | None) -> None:
        if apply_active_adapter(model, desktop) is not None:
            swapped.set()

    with open_store(pg_url) as worker_shop, open_store(pg_url) as third:
        watcher = AdapterWatcher(third, desktop, swap, poll_s=600, root=tmp_path / "third")
        watcher.start()
        try:
            # The worker with the real queue, on its own connection; the round on the tiny model.
            runner = jobs.Runner(worker_shop, tiny_round, teacher=lambda s: nullcontext(None))
            jobs.run_worker(pg_url, runner, once=True, install_signal_handlers=False)
            events = list(jobs.follow(shop, job_id, poll_s=0.1))
            assert events[-1] == {"event": "job", "id": job_id, "status": "succeeded"}, events
            assert events[0]["event"] == "started" and events[0]["device"] in ("cpu", "cuda")
            stages = [e["stage"] for e in events if e["event"] == "stage"]
            assert stages == ["candidates", "fetch_labels", "train", "export", "gate", "promote"]
            assert any(e["event"] == "step" for e in events), "training progress is reported"
            done = [e for e in events if e["event"] == "done" and "promoted" in e][-1]
            assert done["promoted"], events
            assert swapped.wait(30), "the third desktop did not pick up the new adapter"
        finally:
            watcher.stop()
    version = done["version"]
    assert adapters.active_version(shop)["version"] == version  # type: ignore[index]
    assert model.backend.active_adapter == version and local_active(desktop) == version
    with shop.session() as session:
        row = shop.get_adapter(session, version)
        assert row is not None
        assert sha256_of(model.backend.adapters[version]) == row.metrics["sha256"]


def test_xiaoer_worker_runs_a_job_another_process_enqueued(
    shop: Store, pg_url: str, manager: str
) -> None:
    job_id = jobs.enqueue(pg_url, "evolve", shop=shop, secret=manager)
    labeling = jobs.enqueue(pg_url, "label", shop=shop)  # any desktop may ask for labels
    env = {**os.environ, "XIAOER_DATABASE_URL": pg_url}
    worker = subprocess.run(
        [sys.executable, "-m", "app", "worker", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    assert json.loads(worker.stdout.splitlines()[0])["device"] in ("cpu", "cuda")
    status, _ = jobs.job_status(shop, job_id)
    assert status.status == "succeeded", status
    assert status.events[-1] == {
        "event": "done",
        "version": None,
        "promoted": False,
        "reason": "no new labels to learn from",
    }
    status, _ = jobs.job_status(shop, labeling)
    assert (status.kind, status.status) == ("label", "succeeded")
    assert status.events[-1] == {"event": "done", "agent_edit": 0, "teacher": 0, "failed": 0}
    shown = subprocess.run(
        [sys.executable, "-m", "app", "team", "job", str(job_id)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["status"] == "succeeded"


def test_the_manager_commands(shop: Store, pg_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XIAOER_DATABASE_URL": pg_url,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }

    def xiaoer(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "team", *argv],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
        )

    made = xiaoer("manager", "init")
    assert made.returncode == 0, made.stderr
    secret = made.stderr.rsplit(": ", 1)[1].strip()
    assert json.loads(made.stdout)["manager_here"] is False, "no keyring here: nothing kept"
    assert roles.is_manager(shop, secret)
    make_adapter(shop, tmp_path, "v1")
    adapters.publish(shop, "v1")
    refused = xiaoer("promote", "v1")
    assert refused.returncode == 1 and "Only a manager" in refused.stderr
    promoted = xiaoer("promote", "v1", **{roles.SECRET_ENV: secret})
    assert json.loads(promoted.stdout) == {"active": "v1"}
    back = xiaoer("rollback", **{roles.SECRET_ENV: secret})
    assert json.loads(back.stdout) == {"active": None}
    assert adapters.active_version(shop) is None


def test_without_a_notification_the_desktop_still_follows_by_polling(
    desktop: Store, tmp_path: Path
) -> None:
    """A shop database without LISTEN/NOTIFY (here SQLite) is polled every ``poll_s``."""
    with open_store(f"sqlite:///{tmp_path / 'shop.db'}") as shop:
        secret = roles.set_manager_secret(shop)
        make_adapter(shop, tmp_path / "worker", "v1")
        adapters.publish(shop, "v1")
        seen: list[str | None] = []
        changed = threading.Event()

        def note(version: str | None) -> None:
            seen.append(version)
            changed.set()

        watcher = AdapterWatcher(shop, desktop, note, poll_s=0.2, root=tmp_path / "desktop")
        watcher.start()
        try:
            assert changed.wait(30) and seen == [None]
            changed.clear()
            adapters.promote(shop, "v1", secret)
            assert changed.wait(30) and seen == [None, "v1"]
        finally:
            watcher.stop()
    assert local_active(desktop) == "v1"
