"""frontend.yml's test job run by act on this host, every step as written: the system packages,
`make install`, `make lint` and the frontend suite (the real browser against a real backend).
`make test` runs it as its own suite (`frontend-job`), beside the backend's in that lane.

Two things a GitHub runner has and this host cannot are changed in the scratch copy only
(``mnist_testkit.act.on_this_host``): the job's `container:` image (act would pull it; torch is
not in it) and TORCH_INDEX_URL (an index outside the mirrors). The job's `make install` installs
for real into a hard-linked copy of this checkout's .venv, as a runner's cache would restore one:
pip points the editable packages at act's copy of the tree, so the job lints and tests that copy.
No Docker engine is reachable from the job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mnist_testkit.act import act_binary, on_this_host, run_workflow, runner_venv, scratch_checkout
from tests.conftest import REPO_ROOT


def test_frontend_test_job_installs_lints_and_runs_the_frontend_suite(tmp_path: Path):
    act_binary()
    models = REPO_ROOT / "models"
    if not (models / "CURRENT").exists():
        pytest.fail(f"{models} has no model: run make model first (the job's make test serves it)")
    checkout = scratch_checkout(REPO_ROOT, tmp_path / "repo")
    workflow = checkout / ".github" / "workflows" / "frontend.yml"
    workflow.write_text(on_this_host(workflow.read_text(), "test"))
    real_venv = REPO_ROOT / ".venv"
    stamp_time = (real_venv / ".installed").stat().st_mtime_ns
    venv = runner_venv(real_venv, tmp_path / "venv")

    run = run_workflow(
        checkout,
        "frontend.yml",
        "push",
        job="test",
        env={"VENV": str(venv), "MODELS_DIR": str(models), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
        timeout=900,
    )

    assert run.returncode == 0 and run.results == {"test": "success"}, run.summary()
    printed = re.sub(r"\x1b\[[0-9;]*m", "", run.output["test"])  # pytest colours act's pseudo-terminal
    assert "system packages: all present" in printed, run.summary()
    assert "Installed: contract training backend frontend" in printed, run.summary()
    assert "All checks passed!" in printed and "Success: no issues found" in printed, run.summary()
    assert "=== frontend tests ===" in printed, run.summary()
    passed = re.search(r"=+ (\d+) passed(?:, \d+ \w+)* in [\d.]+s", printed)
    assert passed and int(passed.group(1)) >= 30, printed[-3000:]
    # The job installed and tested act's copy of the tree; this checkout's venv kept its own.
    site = next((venv / "lib").glob("python3*/site-packages"))
    job_source = (site / "_editable_impl_mnist_frontend.pth").read_text().strip()
    assert job_source.endswith("/frontend/src") and not job_source.startswith(str(REPO_ROOT)), job_source
    real_site = next((real_venv / "lib").glob("python3*/site-packages"))
    assert (real_site / "_editable_impl_mnist_frontend.pth").read_text().strip() == str(REPO_ROOT / "frontend/src")
    assert (real_venv / ".installed").stat().st_mtime_ns == stamp_time
    assert os.path.exists(venv / ".installed")
