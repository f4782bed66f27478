"""Running one job per target, several at once: --parallel, --per-host, --canary, --max-failures.

Each target runs in a thread of its own (the database client waits without holding the GIL), so it
keeps everything a single run guarantees: its own lock, transactions, dirty marks and checks. The
main thread only schedules: it starts what the limits allow, in the order the targets were given,
and collects what finishes. Once it stops scheduling (a canary failed, too many failures, an error
that every target would give, Ctrl-C), targets not yet started are skipped; the running ones finish,
or with Ctrl-C are cancelled on the server.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .targets import FleetTarget

log = logging.getLogger("pgmigrate")

INTERRUPT_GRACE = 10.0  # seconds given to cancelled targets to wind down after Ctrl-C
TICK = 0.1


@dataclass
class Outcome:
    """What one target reached: ``state`` ok, failed or skipped."""

    name: str
    state: str
    version: int | None = None
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    detail: str = ""  # what the target's line says besides the error (counts, versions)
    fatal: bool = False  # the error is not the target's own (invalid files): every target would give it


@dataclass(frozen=True)
class Limits:
    parallel: int = 4
    per_host: int = 2
    canary: int = 0
    max_failures: int | None = None


class Scheduler:
    """Runs ``job(target)`` for every target within ``limits``; see the module docstring."""

    def __init__(self, targets: list[FleetTarget], job: Callable[[FleetTarget], Outcome], limits: Limits, *,
                 on_start: Callable[[FleetTarget], None], on_finish: Callable[[Outcome], None],
                 on_tick: Callable[[], None], on_note: Callable[[str], None],
                 cancel: Callable[[], object]) -> None:
        self.targets = targets
        self.job = job
        self.limits = limits
        self.on_start, self.on_finish, self.on_tick, self.on_note = on_start, on_finish, on_tick, on_note
        self.cancel = cancel  # makes a Canceller (see cancel.py) when Ctrl-C comes
        self.pending = list(targets)
        self.canaries = {t.name for t in targets[: limits.canary]}
        self.running: dict[str, FleetTarget] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.done: queue.Queue[Outcome] = queue.Queue()
        self.failures = 0
        self.stop_reason: str | None = None
        self.interrupted = False

    def run(self) -> list[Outcome]:
        """Every target's outcome, in the order the targets were given."""
        try:
            self._loop()
        except KeyboardInterrupt:
            self._interrupt()
        reason = self.stop_reason or "not started"
        for t in self.targets:  # the pending ones (and one caught between pending and running by Ctrl-C)
            if t.name not in self.outcomes and t.name not in self.running:
                self._finish(Outcome(t.name, "skipped", error=f"not started: {reason}"))
        self.pending = []
        return [self.outcomes[t.name] for t in self.targets]

    # --- scheduling ---

    def _loop(self) -> None:
        while True:
            self._start_what_fits()
            if not self.running:
                return
            self._collect(TICK)

    def _start_what_fits(self) -> None:
        while self.stop_reason is None:
            target = next((t for t in self.pending if self._may_start(t)), None)
            if target is None:
                return
            self.pending.remove(target)
            self.running[target.name] = target
            self.on_start(target)
            threading.Thread(target=self._work, args=(target,), name=f"pgmigrate-fleet-{target.name}",
                             daemon=True).start()

    def _may_start(self, target: FleetTarget) -> bool:
        if len(self.running) >= self.limits.parallel:
            return False
        if target.name in self.canaries:  # each canary runs alone
            return not self.running
        if any(t.name in self.canaries for t in [*self.pending, *self.running.values()]):
            return False  # everything else waits for the canaries
        on_server = sum(1 for t in self.running.values() if t.server == target.server)
        return on_server < self.limits.per_host

    def _work(self, target: FleetTarget) -> None:
        try:
            outcome = self.job(target)
        except BaseException as exc:  # a job reports its own errors; this is a bug, but the run goes on
            log.exception("fleet job for %s", target.name)
            outcome = Outcome(target.name, "failed", error=f"unexpected {type(exc).__name__} (a bug; rerun with "
                                                            "--verbose and report it)")
        self.done.put(outcome)

    def _collect(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a target to finish (and take any others that have)."""
        try:
            outcome = self.done.get(timeout=timeout)
        except queue.Empty:
            self.on_tick()
            return
        while True:
            self._finished(outcome)
            try:
                outcome = self.done.get_nowait()
            except queue.Empty:
                break
        self.on_tick()

    def _finished(self, outcome: Outcome) -> None:
        self.running.pop(outcome.name, None)
        if self.interrupted and outcome.state == "failed":
            reached = "" if outcome.version is None else f"; it is at version {outcome.version}"
            outcome.error = f"interrupted (Ctrl-C): its work in progress was cancelled{reached}"
        self._finish(outcome)
        if outcome.state != "failed" or self.stop_reason is not None:
            return
        self.failures += 1
        if outcome.fatal:
            self.stop_reason = f"{outcome.name} failed with an error every target would give"
        elif outcome.name in self.canaries:
            self.stop_reason = f"canary {outcome.name} failed"
        elif self.limits.max_failures is not None and self.failures >= self.limits.max_failures:
            self.stop_reason = f"{self.failures} target(s) failed (--max-failures {self.limits.max_failures})"

    def _finish(self, outcome: Outcome) -> None:
        self.outcomes[outcome.name] = outcome
        self.on_finish(outcome)

    # --- Ctrl-C ---

    def _interrupt(self) -> None:
        """Stop scheduling; cancel what runs, on the server; wait a little for the targets to say
        where they stopped (a second Ctrl-C stops the wait)."""
        self.interrupted = True
        self.stop_reason = "interrupted (Ctrl-C)"
        if not self.running:
            return
        self.on_note(f"interrupted: cancelling {len(self.running)} running target(s); Ctrl-C again to stop waiting")
        canceller = self.cancel()
        deadline = time.monotonic() + INTERRUPT_GRACE
        try:
            while self.running and time.monotonic() < deadline:
                canceller.tick(list(self.running.values()))
                self._collect(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            canceller.close()
        for target in list(self.running.values()):
            self.running.pop(target.name)
            self._finish(Outcome(target.name, "failed", error="interrupted (Ctrl-C) while still running; "
                                                              "see where it stopped with 'status'"))
