"""`scripts/deploy.sh --target kubernetes`'s command line: every bad invocation exits 2 naming the problem, before any
kubectl call. (Its rollouts, verification and rollback run on a real cluster: make test-k8s.)"""

from __future__ import annotations

import pytest

from tests.conftest import run_script


def test_help_names_every_option_and_the_rollback():
    result = run_script("deploy.sh", "--help")
    assert result.returncode == 0
    for text in ("--tag", "--force", "--model", "--timeout", "--dry-run", "rollout undo", "KUBECONFIG"):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["production", "--tag", "abc"], "refusing to deploy to production without --force"),
        (["qa", "--tag", "abc"], "unknown environment 'qa'"),
        (["staging"], "--tag is required"),
        (["staging", "--tag", "a/b"], "'a/b' is not a valid image tag"),
        (["staging", "--tag", "abc", "--timeout", "soon"], "--timeout must be whole seconds"),
        (["staging", "--tag", "abc", "--timeout", "0"], "--timeout must be at least 1 second"),
        (["staging", "--tag", "abc", "--no-rollback"], "--no-rollback is for --target compose"),
        (["staging", "--tag", "abc", "--target", "swarm"], "--target is compose or kubernetes"),
        (["staging", "--tag", "abc", "--model", "Prod;rm"], "--model takes a registry alias"),
        (["staging", "--colour"], "unknown option '--colour'"),
        (["staging", "ci"], "one environment only"),
        ([], "Usage: scripts/deploy.sh"),
    ],
)
def test_bad_invocations_exit_2_with_the_reason(args, message):
    result = run_script("deploy.sh", *args[:1], "--target", "kubernetes", *args[1:])
    assert result.returncode == 2
    assert message in result.stdout
