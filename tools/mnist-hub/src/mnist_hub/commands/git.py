"""git commands on the deploy's checkout."""

from __future__ import annotations

from mnist_hub.runner import Command, command


def head() -> Command:
    return command("git", "rev-parse", "HEAD", output="capture")


def has_changes() -> Command:
    """Exit status 1 when tracked files differ from HEAD."""
    return command("git", "diff", "--quiet", "HEAD", "--", output="quiet")


def diff() -> Command:
    return command("git", "diff", "HEAD", "--", output="capture")


def checkout_detached(commit: str) -> Command:
    return command("git", "checkout", "--quiet", "--detach", commit)
