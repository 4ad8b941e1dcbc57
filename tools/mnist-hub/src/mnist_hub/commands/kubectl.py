"""kubectl commands (KUBECTL, KUBE_CONTEXT choose the binary and the cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mnist_hub.runner import Command, Output, command


@dataclass(frozen=True)
class Kubectl:
    binary: str = "kubectl"
    context: str = ""

    def __call__(self, *args: str, output: Output = "show", timeout: float | None = None) -> Command:
        context = ("--context", self.context) if self.context else ()
        return command(self.binary, *context, *args, output=output, timeout=timeout)

    def kustomize(self, folder: str) -> Command:
        return self("kustomize", folder, output="capture")

    def namespace_exists(self, namespace: str) -> Command:
        return self("get", "namespace", namespace, output="quiet")

    def create_namespace(self, namespace: str) -> Command:
        return self("create", "namespace", namespace, output="quiet")

    def apply(self, manifest: str, dry_run: bool = False) -> Command:
        if dry_run:
            return self("apply", "--dry-run=server", "-f", manifest, output="capture-all")
        return self("apply", "-f", manifest)

    def revision(self, namespace: str, deployment: str) -> Command:
        path = "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        return self("-n", namespace, "get", "deployment", deployment, "-o", f"jsonpath={path}", output="capture")

    def annotate_cause(self, namespace: str, deployment: str, cause: str) -> Command:
        return self(
            "-n",
            namespace,
            "annotate",
            "deployment",
            deployment,
            "--overwrite",
            f"kubernetes.io/change-cause={cause}",
            output="quiet",
        )

    def rollout_status(self, namespace: str, deployment: str, timeout: int) -> Command:
        return self("-n", namespace, "rollout", "status", f"deployment/{deployment}", f"--timeout={timeout}s")

    def rollout_undo(self, namespace: str, deployment: str, revision: str) -> Command:
        return self("-n", namespace, "rollout", "undo", f"deployment/{deployment}", f"--to-revision={revision}")

    def port_forward(self, namespace: str, resource: str, local: int, remote: int) -> Command:
        return self("-n", namespace, "port-forward", "--address", "127.0.0.1", resource, f"{local}:{remote}")

    def deployments(self, namespace: str, names: Sequence[str] = ()) -> Command:
        return self("-n", namespace, "get", "deployments", *names, "-o", "json", output="capture")
