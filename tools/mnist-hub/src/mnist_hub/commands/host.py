"""The hub's own scripts and host tools a deploy calls: the smoke test, Slack, the model store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnist_hub.runner import Command, command


def integration_test(args: Sequence[str]) -> Command:
    return command("scripts/test-integration.sh", *args)


def notify(status: str, environment: str, tag: str, duration: int, detail: str) -> Command:
    return command(
        "scripts/notify-slack.sh",
        "--status",
        status,
        "--environment",
        environment,
        "--tag",
        tag,
        "--duration",
        str(duration),
        "--detail",
        detail,
    )


def set_current_model(repo_root: Path, models: str, version: str) -> Command:
    """The model store's one writer (contract/), from this deploy's checkout; plain python3."""
    return command(
        "python3",
        "-m",
        "mnist_contract.model_store",
        "set-current",
        models,
        version,
        env={"PYTHONPATH": str(repo_root / "contract" / "src")},
    )


def ready(url: str, curl_options: Sequence[str]) -> Command:
    return command("curl", "-sS", "--max-time", "10", *curl_options, f"{url}/ready", output="capture")


def certificate_field(cert: str, name: str) -> Command:
    """openssl's -issuer or -subject line of a certificate."""
    return command("openssl", "x509", "-in", cert, "-noout", f"-{name}", output="capture")
