#!/usr/bin/env bash
# Post a deployment result to Slack (an incoming webhook). Used by deploy.sh and the workflows.
# A missing webhook or a Slack outage never fails the caller: it is reported and skipped.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

STATUS="" ENVIRONMENT="" TAG="" DURATION="" DETAIL=""
usage() {
  cat <<'USAGE'
Usage: scripts/notify-slack.sh --status success|failure|rolled-back --environment ENV --tag TAG
                               [--duration SECONDS] [--detail TEXT]
Posts one message to the incoming webhook in $SLACK_WEBHOOK (deploy notifications; alerts go
through Alertmanager's own webhook).
Without a webhook it says so and exits 0.
USAGE
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --status) STATUS=${2:?--status needs a value}; shift ;;
    --environment) ENVIRONMENT=${2:?--environment needs a value}; shift ;;
    --tag) TAG=${2:?--tag needs a value}; shift ;;
    --duration) DURATION=${2:?--duration needs a value}; shift ;;
    --detail) DETAIL=${2:?--detail needs a value}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$STATUS" in
  success|failure|rolled-back) ;;
  *) echo "error: --status must be success, failure or rolled-back (got '${STATUS}')" >&2; exit 2 ;;
esac
[[ -n "$ENVIRONMENT" && -n "$TAG" ]] || { echo "error: --environment and --tag are required" >&2; exit 2; }

WEBHOOK=${SLACK_WEBHOOK:-}
if [[ -z "$WEBHOOK" ]]; then
  echo "Slack: no SLACK_WEBHOOK set; not notifying ($ENVIRONMENT $TAG: $STATUS)"
  exit 0
fi

payload=$(python3 - "$STATUS" "$ENVIRONMENT" "$TAG" "$DURATION" "$DETAIL" "${GITHUB_SERVER_URL:-}" \
  "${GITHUB_REPOSITORY:-}" "${GITHUB_RUN_ID:-}" <<'PY'
import json
import sys

status, environment, tag, duration, detail, server, repository, run_id = sys.argv[1:]
icon = {"success": ":white_check_mark:", "failure": ":x:", "rolled-back": ":leftwards_arrow_with_hook:"}[status]
color = {"success": "good", "failure": "danger", "rolled-back": "warning"}[status]
fields = [
    {"title": "Environment", "value": environment, "short": True},
    {"title": "Tag", "value": tag, "short": True},
    {"title": "Result", "value": status, "short": True},
]
if duration:
    fields.append({"title": "Duration", "value": f"{duration} s", "short": True})
if run_id and repository:
    fields.append({"title": "Run", "value": f"{server or 'https://github.com'}/{repository}/actions/runs/{run_id}"})
attachment = {"color": color, "fields": fields}
if detail:
    attachment["text"] = detail
text = f"{icon} Deploy of `{tag}` to *{environment}*: {status}"
print(json.dumps({"text": text, "attachments": [attachment]}))
PY
)
# The webhook URL is the secret: it goes to curl on its standard input (a config line), never on
# its command line, where any user of the machine can read it (ps, /proc/<pid>/cmdline).
if printf 'url = "%s"\n' "$WEBHOOK" | curl -sS -f --max-time 10 -H 'Content-Type: application/json' --data "$payload" \
  --config - >/dev/null 2>"${TMPDIR:-/tmp}/notify-slack.err"; then
  echo "Slack: notified ($ENVIRONMENT $TAG: $STATUS)"
else
  echo "Slack: warning: the webhook did not accept the message ($(head -c 200 "${TMPDIR:-/tmp}/notify-slack.err")); continuing" >&2
fi
