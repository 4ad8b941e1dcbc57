"""The few MLflow REST calls the sync needs, over the standard library (the serving image carries
no MLflow client): an alias's model version, and that version's artifact files, proxied by the
tracking server (``--serve-artifacts``)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path

ARTIFACTS_SCHEME = "mlflow-artifacts:"
# What a version folder may hold (training publishes these) and how large each may be: the sync
# downloads nothing else and stops reading a file at its cap, whatever the listing claims.
MiB = 1024 * 1024
ALLOWED_FILES = {
    "model.onnx": 64 * MiB,  # the default CNN is 0.9 MB
    "metadata.json": 1 * MiB,  # what the backend reads (MAX_METADATA_BYTES)
    "metadata.schema.json": 1 * MiB,
    "metrics.json": 1 * MiB,
    "confusion_matrix.png": 4 * MiB,
    "MODEL_CARD.md": 256 * 1024,  # served on /api/v1/model/card (the backend's MAX_MODEL_CARD_BYTES)
}
# The files that also make the version an MLflow ONNX model (for MLflow's own tools): allowed in
# a version, never downloaded, since the backend runs model.onnx itself.
MLFLOW_MODEL_FILES = frozenset(
    {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json", "serving_input_example.json"}
)
MAX_VERSION_BYTES = 72 * MiB
_CHUNK = 256 * 1024


class RegistryError(RuntimeError):
    """The registry could not answer what was asked (unreachable, refused, or no such alias)."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str  # the registry's number: 1, 2, ...
    source: str  # where its artifacts are, e.g. mlflow-artifacts:/1/<run>/artifacts/model
    tags: dict[str, str]

    @property
    def model_version_id(self) -> str:
        """Our version id (the folder name under models/), set by training's registration."""
        return self.tags.get("model_version_id", "")


class RegistryClient:
    def __init__(
        self, tracking_uri: str, username: str | None = None, password: str | None = None, timeout: float = 30.0
    ) -> None:
        if not tracking_uri.startswith(("http://", "https://")):
            raise RegistryError(f"MLFLOW_TRACKING_URI must be an http(s) MLflow server, not {tracking_uri!r}")
        self.base = tracking_uri.rstrip("/")
        self.timeout = timeout
        self._headers: dict[str, str] = {}
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def _open(self, route: str, **query: str) -> HTTPResponse:
        url = f"{self.base}{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        # The scheme is http(s) only: __init__ refuses anything else.
        request = urllib.request.Request(url, headers=self._headers)  # noqa: S310  # nosec B310
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310  # nosec B310
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode(errors="replace")
            raise RegistryError(f"{route} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise RegistryError(f"{self.base} cannot be reached: {getattr(error, 'reason', error)}") from None

    def _get(self, route: str, **query: str) -> bytes:
        with self._open(route, **query) as response:
            try:
                return response.read()
            except OSError as error:
                raise RegistryError(f"{route}: the answer broke off: {error}") from None

    def _save(self, route: str, target: Path, limit: int) -> int:
        """Stream one file to ``target`` in chunks, never past ``limit`` bytes; its size."""
        written = 0
        with self._open(route) as response:
            try:
                with target.open("wb") as out:
                    while chunk := response.read(_CHUNK):
                        written += len(chunk)
                        if written > limit:
                            raise ContractViolationError(f"{target.name} is larger than {limit} bytes")
                        out.write(chunk)
            except OSError as error:
                raise RegistryError(f"{target.name} could not be downloaded into {target.parent}: {error}") from None
        return written

    def _json(self, route: str, **query: str) -> dict:
        return json.loads(self._get(route, **query))

    def version_for_alias(self, name: str, alias: str) -> RegisteredVersion:
        try:
            answer = self._json("/api/2.0/mlflow/registered-models/alias", name=name, alias=alias)
        except RegistryError as error:
            if " answered 404" in str(error):
                raise RegistryError(f"{name} has no version with the alias {alias!r} (promote one first)") from None
            raise
        return _version(answer["model_version"])

    def version(self, name: str, version: str) -> RegisteredVersion:
        return _version(self._json("/api/2.0/mlflow/model-versions/get", name=name, version=version)["model_version"])

    def download(self, version: RegisteredVersion, target: Path) -> list[str]:
        """The version's contract files (``ALLOWED_FILES``) into ``target``; their names. A file
        outside the list, or one over its cap or the version's, refuses the version."""
        if not version.source.startswith(ARTIFACTS_SCHEME):
            raise RegistryError(
                f"version {version.version}'s artifacts are at {version.source}: only a tracking server's "
                f"proxied artifacts ({ARTIFACTS_SCHEME}) can be synced"
            )
        root = version.source[len(ARTIFACTS_SCHEME) :].lstrip("/")
        listing = self._json("/api/2.0/mlflow-artifacts/artifacts", path=root).get("files", [])
        unexpected = sorted(
            name
            for name in (Path(entry["path"]).name for entry in listing)
            if name not in ALLOWED_FILES and name not in MLFLOW_MODEL_FILES
        )
        if unexpected:
            raise ContractViolationError(
                f"the version holds files outside the model contract: {', '.join(unexpected)[:200]} "
                f"(allowed: {', '.join([*ALLOWED_FILES, *sorted(MLFLOW_MODEL_FILES)])})"
            )
        names, total = [], 0
        for entry in listing:
            name = Path(entry["path"]).name
            if entry.get("is_dir"):
                raise ContractViolationError(f"{name} is a folder; the model contract is flat")
            if name in MLFLOW_MODEL_FILES:
                continue
            quoted = urllib.parse.quote(f"{root}/{name}")
            total += self._save(f"/api/2.0/mlflow-artifacts/artifacts/{quoted}", target / name, ALLOWED_FILES[name])
            if total > MAX_VERSION_BYTES:
                raise ContractViolationError(f"the version's files are larger than {MAX_VERSION_BYTES} bytes together")
            names.append(name)
        return names


class ContractViolationError(ValueError):
    """A version whose files break the sync's caps (names, sizes, a folder): refused, never retried."""


def _version(document: dict) -> RegisteredVersion:
    return RegisteredVersion(
        name=document["name"],
        version=str(document["version"]),
        source=document.get("source", ""),
        tags={tag["key"]: tag["value"] for tag in document.get("tags", [])},
    )
