"""The model registry's one writer of aliases, scripts/promote-model.sh (training's promote: its
guards, alias history and move records), as commands."""

from __future__ import annotations

from mnist_hub.runner import Command, command

PROMOTE = "scripts/promote-model.sh"


def promote(version: str, alias: str, force: bool = False, reason: str = "") -> Command:
    argv = [PROMOTE, version, "--to", alias]
    if force:
        argv.append("--force")
    if reason:
        argv += ["--reason", reason]
    return command(*argv, output="capture-all")


def show_json() -> Command:
    """Every alias and its version, as JSON."""
    return command(PROMOTE, "--show", "--json", output="capture")


def annotate(version: str, key: str, path: str) -> Command:
    """A JSON report stored on the version (a model-version tag)."""
    return command(PROMOTE, version, "--annotate", key, path, output="capture-all")
