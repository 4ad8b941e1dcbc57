"""deploy.yml's security job run by act on this host, every step as written: `make security`
(bandit, detect-secrets, pip-audit, checkov), then Trivy on the repository, twice.

The run's copy of the workflow goes without the inputs job the security job needs and without
TORCH_INDEX_URL (an index outside the mirrors). `make security` installs for real into
hard-linked copies of this checkout's .venv and .venv-security, as a runner's cache would restore
them. setup-python and Trivy are local stand-ins that record what they get.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mnist_testkit.act import (
    act_binary,
    run_workflow,
    runner_venv,
    scratch_checkout,
    without_needs,
    without_unreachable_env,
)
from tests.conftest import REPO_ROOT


def test_deploy_security_job_runs_the_scans_and_gives_trivy_the_repository(tmp_path: Path):
    """The dispatch's security job, alone (the inputs job it needs is cut), on the working tree,
    without TORCH_INDEX_URL (make security installs the project first)."""
    act_binary()
    checkout = scratch_checkout(REPO_ROOT, tmp_path / "repo")
    workflow = checkout / ".github" / "workflows" / "deploy.yml"
    workflow.write_text(without_unreachable_env(without_needs(workflow.read_text(), "security")))
    stamps = {real: (REPO_ROOT / real / ".installed").stat().st_mtime_ns for real in (".venv", ".venv-security")}
    venvs = {
        "VENV": runner_venv(REPO_ROOT / ".venv", tmp_path / "venv"),
        "SECURITY_VENV": runner_venv(REPO_ROOT / ".venv-security", tmp_path / "venv-security"),
    }
    inputs = {"environment": "staging", "tag": "0123abc", "target": "compose", "model": "", "force": "false"}

    run = run_workflow(
        checkout,
        "deploy.yml",
        "workflow_dispatch",
        inputs=inputs,
        job="security",
        # Where PyPI's vulnerability data cannot be reached, the scan says pip-audit did not run.
        env={**{name: str(path) for name, path in venvs.items()}, "SECURITY_AUDIT_OFFLINE_OK": "1"},
        records=tmp_path / "records",
        timeout=900,
    )

    assert run.returncode == 0 and run.results == {"security": "success"}, run.summary()
    printed = re.sub(r"\x1b\[[0-9;]*m", "", run.output["security"])
    for scanner in ("bandit", "detect-secrets", "checkov"):
        assert f"{scanner}: clean" in printed, printed[-3000:]
    verdicts = (
        "security: bandit, detect-secrets, pip-audit and checkov are clean",
        "security: clean, but NOT RUN: pip-audit",
    )
    assert any(verdict in printed for verdict in verdicts), printed[-3000:]
    calls = [json.loads(line) for line in (tmp_path / "records" / "actions.jsonl").read_text().splitlines()]
    assert [call["action"].split("@")[0] for call in calls] == [
        "actions/setup-python",
        "aquasecurity/trivy-action",
        "aquasecurity/trivy-action",
    ]
    assert calls[0]["inputs"] == {"python-version": "3.11"}
    scan, config = calls[1]["inputs"], calls[2]["inputs"]
    assert (scan["scan-type"], scan["scan-ref"], scan["scanners"], scan["exit-code"]) == ("fs", ".", "vuln,secret", "1")
    assert (config["scan-type"], config["scan-ref"], config["exit-code"]) == ("config", ".", "1")
    # The job installed into its copies; the checkout's environments kept their install stamps.
    for name, real in (("VENV", ".venv"), ("SECURITY_VENV", ".venv-security")):
        assert (venvs[name] / ".installed").exists()
        assert (REPO_ROOT / real / ".installed").stat().st_mtime_ns == stamps[real]
