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
from pathlib import Path

ARTIFACTS_SCHEME = "mlflow-artifacts:"


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

    def _get(self, route: str, **query: str) -> bytes:
        url = f"{self.base}{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        # The scheme is http(s) only: __init__ refuses anything else.
        request = urllib.request.Request(url, headers=self._headers)  # noqa: S310  # nosec B310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310
                return response.read()
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode(errors="replace")
            raise RegistryError(f"{route} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise RegistryError(f"{self.base} cannot be reached: {getattr(error, 'reason', error)}") from None

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
        """Every file of the version's artifact folder into ``target``; their names."""
        if not version.source.startswith(ARTIFACTS_SCHEME):
            raise RegistryError(
                f"version {version.version}'s artifacts are at {version.source}: only a tracking server's "
                f"proxied artifacts ({ARTIFACTS_SCHEME}) can be synced"
            )
        root = version.source[len(ARTIFACTS_SCHEME) :].lstrip("/")
        listing = self._json("/api/2.0/mlflow-artifacts/artifacts", path=root).get("files", [])
        names = []
        for entry in listing:
            name = Path(entry["path"]).name
            if entry.get("is_dir") or name in ("", ".", ".."):
                continue  # the contract is flat: model.onnx, metadata.json, ...
            quoted = urllib.parse.quote(f"{root}/{name}")
            (target / name).write_bytes(self._get(f"/api/2.0/mlflow-artifacts/artifacts/{quoted}"))
            names.append(name)
        return names


def _version(document: dict) -> RegisteredVersion:
    return RegisteredVersion(
        name=document["name"],
        version=str(document["version"]),
        source=document.get("source", ""),
        tags={tag["key"]: tag["value"] for tag in document.get("tags", [])},
    )
