"""Running commands: every step of a deploy is a ``Command`` (a value); one ``Runner`` runs them.

The tests run the same steps against ``FakeHost`` (tests/fakes.py), which models the containers,
answers each command and fails where a test says, so every branch of a deploy runs without an engine.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

# show: the command's output goes to ours (as a shell script's would); capture: stdout is read
# (stderr still shown); capture-all: stdout and stderr read together; quiet: both discarded.
Output = Literal["show", "capture", "capture-all", "quiet"]

TIMED_OUT = 124  # what coreutils' timeout(1) exits with, as the shell scripts reported it


@dataclass(frozen=True)
class Command:
    """One program to run: its argv, the variables it needs on top of the tool's environment,
    how long it may take, what it reads on stdin and what happens to its output."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    output: Output = "show"
    stdin: str | None = None

    def __str__(self) -> str:
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(self.env.items()))
        return f"{prefix} {shlex.join(self.argv)}".strip()


def command(
    *argv: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    output: Output = "show",
    stdin: str | None = None,
) -> Command:
    return Command(tuple(argv), dict(env or {}), timeout, output, stdin)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]


class Background(Protocol):
    """A command left running (a port-forward): stopped when the deploy ends."""

    def stop(self) -> None: ...


class Runner(Protocol):
    def run(self, command: Command) -> Result: ...

    def start(self, command: Command, log: Path) -> Background: ...

    def sleep(self, seconds: float) -> None: ...

    def monotonic(self) -> float: ...

    def wall_clock(self) -> float: ...


class _Process:
    def __init__(self, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self._process, self._log = process, log

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()


class SubprocessRunner:
    """Runs commands for real, from ``cwd``, with the tool's environment plus each command's.
    ``debug`` (DEBUG=1) prints every command before it runs, as ``set -x`` did."""

    def __init__(self, cwd: Path, debug: bool = False) -> None:
        self.cwd, self.debug = cwd, debug

    def _environment(self, command: Command) -> dict[str, str]:
        return {**os.environ, **command.env}

    def run(self, command: Command) -> Result:
        if self.debug:
            print(f"+ {command}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        stdout = {"show": None, "capture": subprocess.PIPE, "capture-all": subprocess.PIPE, "quiet": subprocess.DEVNULL}
        stderr = {"show": None, "capture": None, "capture-all": subprocess.STDOUT, "quiet": subprocess.DEVNULL}
        try:
            completed = subprocess.run(
                command.argv,
                cwd=self.cwd,
                env=self._environment(command),
                input=command.stdin,
                stdin=None if command.stdin is not None else subprocess.DEVNULL,
                stdout=stdout[command.output],
                stderr=stderr[command.output],
                text=True,
                errors="replace",
                timeout=command.timeout,
                check=False,
            )
        except FileNotFoundError:
            return Result(127, f"{command.argv[0]}: command not found\n")
        except subprocess.TimeoutExpired as expired:
            out = expired.stdout or ""
            text = out.decode(errors="replace") if isinstance(out, bytes) else out
            print(f"timed out after {command.timeout:g} s: {shlex.join(command.argv[:4])} ...", flush=True)
            return Result(TIMED_OUT, text)
        return Result(completed.returncode, completed.stdout or "")

    def start(self, command: Command, log: Path) -> Background:
        if self.debug:
            print(f"+ {command} &", file=sys.stderr, flush=True)
        handle = log.open("ab")
        process = subprocess.Popen(
            command.argv,
            cwd=self.cwd,
            env=self._environment(command),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        return _Process(process, handle)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_clock(self) -> float:
        return time.time()
