"""The shop's job queue and its worker (team mode): evolution rounds, teacher labeling and
matcher training run as jobs in the shop's PostgreSQL database, on procrastinate.

>>> job = enqueue(url, "evolve", secret=manager_secret)   # a manager's desktop: "Evolve now"
>>> for event in follow(shop, job): print(event)           # its progress, from any desktop
$ xiaoer worker                                            # the training machine runs it

procrastinate keeps the jobs (``procrastinate_jobs``, built by migration 0008), hands each to one
worker (``FOR UPDATE SKIP LOCKED``), wakes workers with LISTEN/NOTIFY, and records the outcome.
Xiaoer adds the jobs themselves and their progress: each event a job reports (stage, training
step, gate result, done or error) becomes a ``job_events`` row that any desktop can read while
the job runs, whichever machine runs it. Rounds share the lock ``training``: two workers never
train at once, and at most one round waits in the queue (``queueing_lock``).

Only a manager enqueues a round (it may promote an adapter); the round publishes the adapter it
trained and promotes it through ``adapters.activate``, which tells every desktop.

Plain Python (no Qt).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import procrastinate
from procrastinate import exceptions as queue_errors
from sqlalchemy import make_url

from app.evolve.loop import Evolution
from app.evolve.settings import EvolutionSettings
from app.store import Store
from app.team import adapters
from app.team.roles import require_manager

log = logging.getLogger(__name__)

JobKind = Literal["evolve", "label", "matcher"]
KINDS: tuple[JobKind, ...] = ("evolve", "label", "matcher")
QUEUE = "training"
"""The queue the training machine's worker takes jobs from."""
FINISHED = ("succeeded", "failed", "cancelled", "aborted")
STEP_EVERY_S = 1.0
"""Training steps are reported at most this often (every other event is kept)."""
Progress = Callable[[dict[str, Any]], None]
EvolutionFactory = Callable[[Store, dict[str, Any]], Evolution]


def conninfo(url: str) -> str:
    """The shop's URL for libpq (procrastinate's psycopg pool): no SQLAlchemy driver name;
    server options (``?options=-csearch_path%3D…``) kept."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def queue_app(url: str) -> procrastinate.App:
    """The procrastinate app on the shop's database, with Xiaoer's tasks."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(url)))
    for kind, run in (("evolve", _run_evolve), ("label", _run_label), ("matcher", _run_matcher)):
        app.task(name=f"xiaoer.{kind}", queue=QUEUE, pass_context=True)(run)
    return app


# --- enqueueing (any desktop) -------------------------------------------------------------------


def enqueue(
    url: str, kind: JobKind, *, shop: Store | None = None, secret: str | None = None, **args: Any
) -> int:
    """Put a job in the shop's queue; returns its id. A round needs the manager's ``secret``
    (it may promote); a round already waiting is returned instead of a second one."""
    if kind not in KINDS:
        raise ValueError(f"unknown job {kind!r}: one of {', '.join(KINDS)}")
    if kind == "evolve":
        owned = shop is None
        shop = shop or _open(url)
        try:
            require_manager(shop, secret)
        finally:
            if owned:
                shop.close()
    app = queue_app(url)
    task = app.tasks[f"xiaoer.{kind}"]
    options: dict[str, Any] = {}
    if kind in ("evolve", "matcher"):
        options = {"lock": "training", "queueing_lock": f"xiaoer.{kind}"}
    with app.open():
        try:
            return int(task.configure(**options).defer(**args))
        except queue_errors.AlreadyEnqueued:
            waiting = app.job_manager.list_jobs(queueing_lock=f"xiaoer.{kind}", status="todo")
            return int(next(iter(waiting)).id)  # type: ignore[arg-type]


def _open(url: str) -> Store:
    from app.store import open_store

    return open_store(url)


# --- progress (any desktop) ---------------------------------------------------------------------


@dataclass
class JobStatus:
    id: int
    kind: str
    status: str
    """procrastinate's: todo, doing, succeeded, failed, cancelled, aborting, aborted."""
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def last(self) -> dict[str, Any] | None:
        return self.events[-1] if self.events else None


def job_status(shop: Store, job_id: int, after: int = 0) -> tuple[JobStatus, int]:
    """The job's state and its events after event id ``after``; returns (it, the last event id)."""
    with shop.session() as session:
        found = shop.queued_job(session, job_id)
        if found is None:
            raise LookupError(f"No job {job_id} in the shop's queue")
        rows = shop.job_events(session, job_id, after)
    last = rows[-1][0] if rows else after
    kind = found[0].removeprefix("xiaoer.")
    return JobStatus(job_id, kind, found[1], [e for _, e in rows]), last


def follow(shop: Store, job_id: int, poll_s: float = 1.0) -> Iterator[dict[str, Any]]:
    """Every event of the job as it comes, until it finished; then one ``{"event": "job",
    "status": …}``."""
    after = 0
    while True:
        status, after = job_status(shop, job_id, after)
        yield from status.events
        if status.finished:
            status, after = job_status(shop, job_id, after)  # events written as it finished
            yield from status.events
            yield {"event": "job", "id": job_id, "status": status.status}
            return
        time.sleep(poll_s)


class Reporter:
    """A job's progress events, written to ``job_events`` as they come (steps throttled)."""

    def __init__(self, shop: Store, job_id: int) -> None:
        self.shop = shop
        self.job_id = job_id
        self._last_step = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event.get("step") != event.get("total"):
            now = time.monotonic()
            if now - self._last_step < STEP_EVERY_S:
                return
            self._last_step = now
        clean = {k: v for k, v in event.items() if isinstance(v, str | int | float | bool | None)}
        with self.shop.session() as session:
            self.shop.add_job_event(session, self.job_id, clean)


# --- the worker (the training machine) ----------------------------------------------------------


class ShopEvolution(Evolution):
    """A round over the shop's database: the trained adapter is published into it (with its
    hash) before the gate, and a promotion tells every desktop."""

    def export(self, version: str) -> Any:
        path = super().export(version)
        adapters.publish(self.store, version)
        return path

    def promote(self, version: str) -> None:
        with self.store.session() as session:
            adapters.activate(session, self.store, version)


def default_evolution(shop: Store, args: dict[str, Any]) -> Evolution:
    """The round as this machine's settings say (``xiaoer evolve`` settings), ``steps`` from
    the job when given; the teacher is attached by the runner."""
    settings = EvolutionSettings.load()
    if args.get("steps"):
        settings = replace(settings, steps=int(args["steps"]))
    return ShopEvolution(shop, settings)


@dataclass
class Runner:
    """What the worker's jobs run on: the shop's store, and how a round is made (tests give a
    tiny model here)."""

    shop: Store
    make_evolution: EvolutionFactory = default_evolution
    teacher: Callable[[Store], contextlib.AbstractContextManager[Any]] | None = None
    """Gives the teacher service for labeling (default: the configured teacher, as in
    ``xiaoer evolve``)."""

    def _teacher(self, evo: Evolution) -> contextlib.AbstractContextManager[Any]:
        """The teacher for ``evo``'s candidates: none when every one has the agent's edit (or
        there are none), so a round never starts a teacher it won't ask."""
        if evo.teacher is not None or all(c.edited_text for c in evo.candidates()):
            return contextlib.nullcontext(evo.teacher)
        if self.teacher is not None:
            return self.teacher(self.shop)
        from app.evolve.cli import teacher_service

        return teacher_service(self.shop)

    def evolve(self, job_id: int, args: dict[str, Any]) -> dict[str, Any]:
        report = Reporter(self.shop, job_id)
        report({"event": "started", "device": device()})
        evo = self.make_evolution(self.shop, args)
        with self._teacher(evo) as service:
            evo.teacher = service
            return self._guarded(report, lambda: evo.run_round(report))

    def label(self, job_id: int) -> dict[str, Any]:
        report = Reporter(self.shop, job_id)
        report({"event": "started"})
        evo = self.make_evolution(self.shop, {})
        with self._teacher(evo) as service:
            evo.teacher = service

            def run() -> dict[str, Any]:
                counts = evo.fetch_labels(progress=report)
                report({"event": "done", **counts})
                return counts

            return self._guarded(report, run)

    def matcher(self, job_id: int, args: dict[str, Any]) -> dict[str, Any]:
        from pathlib import Path

        from app.scoring import corpus
        from app.scoring.registry import train_and_register

        report = Reporter(self.shop, job_id)
        report({"event": "started", "device": device()})

        def run() -> dict[str, Any]:
            enc, dec = Path(args["enc"]), Path(args["dec"])
            pairs = corpus.dedupe_pairs(corpus.read_jddc2018(enc, dec))
            if args.get("limit"):
                pairs = pairs[: int(args["limit"])]
            version, metrics = train_and_register(pairs, self.shop, True, report)
            report({"event": "done", "version": version})
            return {"version": version, **metrics}

        return self._guarded(report, run)

    @staticmethod
    def _guarded(report: Progress, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return run()
        except Exception as exc:
            report({"event": "error", "message": str(exc)})
            raise


def device() -> str:
    """Where training runs on this machine: ``cuda`` when torch sees a GPU, else ``cpu``."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _runner(context: procrastinate.JobContext) -> tuple[Runner, int]:
    runner = context.additional_context["runner"]
    assert isinstance(runner, Runner) and context.job.id is not None
    return runner, context.job.id


def _run_evolve(context: procrastinate.JobContext, **args: Any) -> dict[str, Any]:
    runner, job_id = _runner(context)
    return runner.evolve(job_id, args)


def _run_label(context: procrastinate.JobContext) -> dict[str, Any]:
    runner, job_id = _runner(context)
    return runner.label(job_id)


def _run_matcher(context: procrastinate.JobContext, **args: Any) -> dict[str, Any]:
    runner, job_id = _runner(context)
    return runner.matcher(job_id, args)


def run_worker(
    url: str,
    runner: Runner | None = None,
    *,
    once: bool = False,
    install_signal_handlers: bool = True,
) -> None:
    """Run the shop's jobs on this machine, one at a time (one GPU, or the CPU): until stopped
    (Ctrl-C, SIGTERM), or with ``once`` until the queue is empty."""
    owned = runner is None
    runner = runner or Runner(_open(url))
    try:
        queue_app(url).run_worker(
            queues=[QUEUE],
            wait=not once,
            concurrency=1,
            name=f"xiaoer-{device()}",
            additional_context={"runner": runner},
            install_signal_handlers=install_signal_handlers,
            listen_notify=True,
            fetch_job_polling_interval=5.0,
        )
    finally:
        if owned:
            runner.shop.close()
