"""The MLflow image's rule on who may deploy through the registry (docker/mlflow/registry_roles.py),
request by request; test_tracking.py runs it inside a real server."""

from __future__ import annotations

import importlib.util

import pytest

from mnist_testkit.processes import REPO_ROOT

spec = importlib.util.spec_from_file_location("registry_roles", REPO_ROOT / "docker" / "mlflow" / "registry_roles.py")
assert spec and spec.loader
roles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(roles)

PROMOTERS = frozenset({"promoter", "a-person"})
READ_ONLY = frozenset({"model-sync"})


def refusal(user: str, method: str, route: str, body: dict | None = None, prefix: str = "/api/2.0") -> str | None:
    return roles.refusal(user, method, f"{prefix}/mlflow/{route}", body or {}, PROMOTERS, READ_ONLY)


@pytest.mark.parametrize("prefix", ["/api/2.0", "/ajax-api/2.0"])  # the REST API and the web UI's
@pytest.mark.parametrize(
    ("method", "route", "body", "refused_as"),
    [
        ("POST", "registered-models/alias", {"alias": "production"}, "moving the alias 'production'"),
        ("DELETE", "registered-models/alias", {"alias": "staging"}, "moving the alias 'staging'"),
        ("DELETE", "registered-models/delete", {}, "deleting a registered model"),
        ("POST", "registered-models/rename", {}, "renaming a registered model"),
        ("DELETE", "model-versions/delete", {}, "deleting a model version"),
        ("POST", "registered-models/set-tag", {"key": "alias_history.production"}, "tag 'alias_history.production'"),
        ("DELETE", "registered-models/delete-tag", {"key": "alias_moves"}, "tag 'alias_moves'"),
        ("POST", "model-versions/set-tag", {"key": "promoted.production"}, "tag 'promoted.production'"),
        ("POST", "model-versions/set-tag", {"key": "promotion.production.forced"}, "tag 'promotion.production.forced'"),
        ("POST", "model-versions/set-tag", {"key": "canary_analysis"}, "tag 'canary_analysis'"),
    ],
)
def test_deploy_writes_are_the_promoters(prefix, method, route, body, refused_as):
    why = refusal("training", method, route, body, prefix)
    assert why and refused_as in why and "only promoters may ('training'" in why
    assert refusal("promoter", method, route, body, prefix) is None
    assert refusal("a-person", method, route, body, prefix) is None


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "model-versions/create", {"name": "mnist-cnn"}),
        ("POST", "registered-models/create", {"name": "mnist-cnn"}),
        ("POST", "model-versions/set-tag", {"key": "test_accuracy"}),
        ("POST", "model-versions/set-tag", {"key": "canary_analysis_notes"}),  # the whole key is matched
        ("POST", "registered-models/set-tag", {"key": "alias_history"}),  # no alias: not a record
        ("GET", "registered-models/alias", {}),
        ("POST", "runs/log-batch", {}),
    ],
)
def test_registering_and_ordinary_writes_are_left_to_mlflow(method, route, body):
    assert refusal("training", method, route, body) is None


@pytest.mark.parametrize(
    ("method", "route"),
    [("POST", "runs/search"), ("POST", "model-versions/set-tag"), ("POST", "registered-models/alias")],
)
def test_read_only_users_only_read(method, route):
    assert (
        refusal("model-sync", method, route) == "user 'model-sync' may only read the registry (MLFLOW_READ_ONLY_USERS)"
    )
    assert refusal("model-sync", "GET", route) is None
