"""One look at the registry: publish the alias's version unless it is already current."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mnist_model_sync.publish import (
    INCOMING,
    BehaviourGate,
    VerificationError,
    current_version,
    incoming_dir,
    publish,
    verify,
)
from mnist_model_sync.registry import ContractViolationError, RegistryClient, RegistryError

logger = logging.getLogger("mnist_model_sync")


@dataclass(frozen=True)
class Outcome:
    result: str  # published | unchanged | refused | unavailable
    detail: str
    version_id: str | None = None
    registry_version: str | None = None


def sync_once(
    client: RegistryClient,
    model_name: str,
    alias: str,
    model_dir: Path,
    keep: int = 5,
    refused: set[str] | None = None,
    gate: BehaviourGate | None = None,
) -> Outcome:
    """Never raises for what the registry or a version does wrong: the outcome says it, and the
    version already in ``model_dir`` keeps serving. ``alias`` may also be a registry version
    number: that version, whatever the aliases say (a deploy pinned to it, or rolled back to it).
    Registry versions refused once are added to ``refused`` and not downloaded again (a
    registered version's files never change)."""
    refused = refused if refused is not None else set()
    pinned = alias.isdigit()
    try:
        registered = client.version(model_name, alias) if pinned else client.version_for_alias(model_name, alias)
    except RegistryError as error:
        return Outcome("unavailable", str(error))
    version_id = registered.model_version_id
    reference = f"{model_name}/{alias}" if pinned else f"{model_name}@{alias}"
    label = f"{reference} = version {registered.version} ({version_id or 'no model_version_id tag'})"
    if not version_id or "/" in version_id or version_id.startswith("."):
        return Outcome("refused", f"{label}: not a version registered by training", None, registered.version)
    if current_version(model_dir) == version_id:
        return Outcome("unchanged", label, version_id, registered.version)
    if registered.version in refused:
        earlier = f"{label}: refused earlier (promote another version)"
        return Outcome("refused", earlier, version_id, registered.version)
    try:
        target = incoming_dir(model_dir, version_id)
        client.download(registered, target)
        verify(target, registered.tags.get("onnx_sha256", ""), gate)
    except RegistryError as error:  # the registry or the disk failed: the next look tries again
        shutil.rmtree(model_dir / INCOMING, ignore_errors=True)
        return Outcome("unavailable", f"{label}: {error}", version_id, registered.version)
    except (VerificationError, ContractViolationError) as error:
        shutil.rmtree(model_dir / INCOMING, ignore_errors=True)
        refused.add(registered.version)
        return Outcome("refused", f"{label}: {error}", version_id, registered.version)
    except BaseException:
        shutil.rmtree(model_dir / INCOMING, ignore_errors=True)
        raise
    publish(model_dir, target, keep)
    return Outcome("published", label, version_id, registered.version)
