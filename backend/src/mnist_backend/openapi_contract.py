"""The OpenAPI schema as this service's settings make it true.

FastAPI documents what the routes declare; some answers depend on the settings instead. Without
admin keys in dev, callers on this machine reload the model without a key: the admin route's
security is then stated as optional ("{}"), with the exemption in its description. A batch
holds at most ``MAX_BATCH`` images, as configured. And the Open Inference Protocol's paths
name the one model and a version id in the contract's format (``mnist_contract.version_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from mnist_backend.config import Environment, Settings
from mnist_backend.open_inference import MODEL_NAME
from mnist_contract.version_id import VERSION_ID_PATTERN

ADMIN_RELOAD = "/api/v1/admin/reload"
BATCH = "/api/v1/predict/batch"
DEV_EXEMPTION = (
    " In dev without ADMIN_API_KEYS, callers on this machine need no key (and others get 403);"
    " with admin keys, an admin key in X-API-Key."
)


def state_settings_in_openapi(app: FastAPI, settings: Settings) -> None:
    """Wrap ``app.openapi`` so the schema it serves says what these settings do."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _protocol_path_parameters(schema)
            body = schema["paths"][BATCH]["post"]["requestBody"]["content"]["application/json"]["schema"]
            batch = body["properties"]["images"]
            batch["maxItems"] = settings.max_batch
            batch["description"] = f"pixel arrays and/or base64 images; at most MAX_BATCH ({settings.max_batch})"
            if settings.environment == Environment.DEV and not settings.admin_api_keys:
                operation = schema["paths"][ADMIN_RELOAD]["post"]
                operation["security"] = [*operation.get("security", []), {}]
                operation["description"] = operation.get("description", "") + DEV_EXEMPTION
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _protocol_path_parameters(schema: dict[str, Any]) -> None:
    """The one model's name, and the version-id format, on every ``/v2/models/...`` path; no 422."""
    for path, operations in schema["paths"].items():
        if not path.startswith("/v2/models/"):
            continue
        for operation in operations.values():
            # FastAPI documents a 422 for any route with parameters; these are plain strings that
            # never fail validation (an unknown name or version is the protocol's 404).
            operation["responses"].pop("422", None)
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "model_name":
                    parameter["schema"] = {"type": "string", "enum": [MODEL_NAME], "title": "Model Name"}
                elif parameter["name"] == "model_version":
                    parameter["schema"] = {"type": "string", "pattern": VERSION_ID_PATTERN, "title": "Model Version"}
