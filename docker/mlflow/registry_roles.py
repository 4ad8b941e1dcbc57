"""Who may deploy through the registry: MLflow's basic-auth app with one rule stricter.

MLflow lets whoever may register a version (EDIT on the registered model) also move its aliases,
delete what an alias names and rewrite every tag. The hub's environments follow aliases, so those
are deploy rights. Here they belong to the promoters only (MLFLOW_PROMOTERS: user names, comma
separated; MLflow admins too):
  - setting or deleting an alias;
  - deleting or renaming a registered model, deleting a model version;
  - writing the tags that record promotions, which ``promote.py --rollback`` walks back and people
    read: the registered model's ``alias_history.<alias>`` and ``alias_moves``, a version's
    ``promoted.<alias>``, ``promotion.<alias>.forced`` and ``canary_analysis``.
Read-only users (MLFLOW_READ_ONLY_USERS: the model syncs) may only read (GET, HEAD).
Every version registered, every alias move and every refusal is one JSON line on the server's log naming the user: the
registry's own audit trail of who deployed what.

The auth app imports this module by name (``authorization_function = registry_roles:authenticate``
in its configuration): docker/mlflow/serve.py puts this folder on the server's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.datastructures import Authorization

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The REST (/api/2.0/...) and the web UI's (/ajax-api/2.0/...) routes alike.
ALIAS_ROUTE = re.compile(r"/mlflow/registered-models/alias$")
VERSION_CREATE_ROUTE = re.compile(r"/mlflow/model-versions/create$")
LIFECYCLE_ROUTES = {
    "registered-models/delete": "deleting a registered model",
    "registered-models/rename": "renaming a registered model",
    "model-versions/delete": "deleting a model version",
}
TAG_ROUTES = re.compile(r"/mlflow/(registered-models|model-versions)/(set-tag|delete-tag)$")
PROTECTED_TAGS = re.compile(r"alias_history\..+|alias_moves|promoted\..+|promotion\..+|canary_analysis")


def names(variable: str) -> frozenset[str]:
    return frozenset(name.strip() for name in os.environ.get(variable, "").split(",") if name.strip())


def refusal(
    user: str, method: str, path: str, body: dict, promoters: frozenset[str], read_only: frozenset[str]
) -> str | None:
    """Why ``user`` may not make this request (None: MLflow's own permissions decide)."""
    if user in read_only and method not in READ_METHODS:
        return f"user {user!r} may only read the registry (MLFLOW_READ_ONLY_USERS)"
    if user in promoters or method in READ_METHODS:
        return None
    if ALIAS_ROUTE.search(path):
        what = f"moving the alias {body.get('alias', '?')!r}"
    elif route := next((route for route in LIFECYCLE_ROUTES if path.endswith(f"/mlflow/{route}")), None):
        what = LIFECYCLE_ROUTES[route]
    elif TAG_ROUTES.search(path) and PROTECTED_TAGS.fullmatch(str(body.get("key", ""))):
        what = f"writing the promotion record tag {body.get('key')!r}"
    else:
        return None
    return (
        f"{what} changes what the environments serve: only promoters may ({user!r} is not in "
        "MLFLOW_PROMOTERS); promote with scripts/promote-model.sh and the promoter account"
    )


def log(event: str, **fields: object) -> None:
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields}
    print(f"registry-audit: {json.dumps(line, sort_keys=True)}", file=sys.stderr, flush=True)


def authenticate() -> Authorization | Response:
    """Basic auth as MLflow does it, then the rule above. MLflow calls this several times per
    request (its validators ask who the user is): decided and logged once, on ``flask.g``."""
    from flask import Response, g, request
    from mlflow.server.auth import authenticate_request_basic_auth, store

    authorization = authenticate_request_basic_auth()
    if isinstance(authorization, Response) or getattr(g, "registry_roles_checked", False):
        return authorization
    g.registry_roles_checked = True
    body = request.get_json(silent=True) if request.method not in READ_METHODS else None
    body = body if isinstance(body, dict) else {}
    user = authorization.username
    why = None
    if not store.get_user(user).is_admin:
        why = refusal(
            user, request.method, request.path, body, names("MLFLOW_PROMOTERS"), names("MLFLOW_READ_ONLY_USERS")
        )
    if why:
        log("refused", user=user, method=request.method, path=request.path, reason=why)
        return Response(
            json.dumps({"error_code": "PERMISSION_DENIED", "message": why}), status=403, mimetype="application/json"
        )
    if VERSION_CREATE_ROUTE.search(request.path):  # MLflow keeps no user on a version
        log("version registered", user=user, model=body.get("name"), run_id=body.get("run_id"))
    elif ALIAS_ROUTE.search(request.path) and request.method not in READ_METHODS:
        log(
            "alias deleted" if request.method == "DELETE" else "alias set",
            user=user,
            model=body.get("name") or request.args.get("name"),
            alias=body.get("alias") or request.args.get("alias"),
            version=body.get("version"),
        )
    return authorization
