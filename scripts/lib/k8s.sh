# Shared by deploy-k8s.sh and k8s/test-k8s.sh (sourced, not run).
# shellcheck shell=bash

# k8s_port_forward NAMESPACE RESOURCE REMOTE_PORT DIR: forwards a free port on 127.0.0.1 to the
# resource with "${KUBECTL_CMD[@]}", prints that port once kubectl forwards, and appends
# kubectl's pid to DIR/port-forward.pids (callers usually run this in a command substitution,
# whose variables never reach their EXIT trap; the file does). Its log: DIR/port-forward-*.log.
k8s_port_forward() {
  local namespace=$1 resource=$2 remote=$3 dir=$4 port log
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log="$dir/port-forward-${resource//\//-}.log"
  # kubectl itself in the background, not a function's subshell: its pid is the one to kill.
  "${KUBECTL_CMD[@]}" -n "$namespace" port-forward --address 127.0.0.1 "$resource" "$port:$remote" >"$log" 2>&1 &
  echo $! >>"$dir/port-forward.pids"
  for _ in $(seq 1 50); do grep -q "Forwarding from" "$log" && { echo "$port"; return 0; }; sleep 0.2; done
  cat "$log" >&2
  return 1
}

# k8s_stop_port_forwards DIR: stops every port-forward k8s_port_forward started for DIR.
k8s_stop_port_forwards() {
  [[ -f $1/port-forward.pids ]] && xargs -r kill <"$1/port-forward.pids" 2>/dev/null
  rm -f "$1/port-forward.pids"
}
