# The deployment record and the deploy lock (sourced by deploy.sh, not run).
# A record is one `key=value` per line: what an environment runs (current.env), what it ran
# before (previous.env), and one line per attempt in history.log. Values never hold newlines.
# shellcheck shell=bash

record_get() {  # file key: the value, or nothing when the file or the key is missing
  [[ -f "$1" ]] || return 0
  awk -v key="$2" 'index($0, key "=") == 1 { print substr($0, length(key) + 2); exit }' "$1"
}

write_record() {  # file key=value...: replaced atomically, so a reader never sees half a record
  local file=$1
  shift
  printf '%s\n' "$@" >"$file.new"
  mv -f "$file.new" "$file"
}

append_history() {  # state-dir key=value...: one line per attempt, newest last
  local dir=$1
  shift
  printf '%s\n' "$*" >>"$dir/history.log"
}

record_summary() {  # file: one line for people
  local tag
  tag=$(record_get "$1" tag)
  if [[ -z "$tag" ]]; then
    echo "nothing recorded"
  else
    echo "$tag (commit $(record_get "$1" commit | cut -c1-12), model $(record_get "$1" model_version), deployed $(record_get "$1" deployed_at))"
  fi
}

# take_deploy_lock state-dir env tag: one deploy (or rollback) of an environment at a time. The
# lock is flock(1) on state-dir/lock, held until this process exits. A caller that already holds
# it (remote-deploy.sh, which locks before it touches the checkout) passes its descriptor in
# DEPLOY_LOCK_FD; locking the same open file again is then a no-op.
take_deploy_lock() {
  local dir=$1 env=$2 tag=$3 lock=$1/lock fd
  command -v flock >/dev/null || die "flock is not installed (util-linux): it keeps two deploys of $env apart"
  if [[ -n "${DEPLOY_LOCK_FD:-}" && "/dev/fd/$DEPLOY_LOCK_FD" -ef "$lock" ]]; then
    fd=$DEPLOY_LOCK_FD
  else
    exec {fd}>>"$lock"
  fi
  if ! flock -n "$fd"; then
    die "another deploy of $env is running ($(cat "$dir/lock.holder" 2>/dev/null || echo 'holder unknown')); nothing was changed: wait for it to finish"
  fi
  write_record "$dir/lock.holder" "$(printf 'pid %s, %s@%s, since %s, deploying %s' "$$" "$(id -un)" \
    "$(hostname)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$tag")"
}

# live_deployment_settings state-dir env: exports what deploy.sh last deployed (image repository
# and tag; production's pool and pool file), so that a Compose command by hand describes the
# running containers instead of recreating them from defaults. Values already set win.
live_deployment_settings() {
  local dir=$1/$2 record source
  record=$dir/current.env
  [[ -f "$record" ]] || return 0
  export IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-$(record_get "$record" image_repository)}
  export IMAGE_TAG=${IMAGE_TAG:-$(record_get "$record" tag)}
  # Where its models come from (the registry's alias, or the host's folder), unless set here.
  source=$(record_get "$record" model_source)
  [[ -n "$source" && -z "${MODEL_ALIAS:-}" ]] && use_model_source "$2" "$source"
  if [[ $2 == production ]]; then
    export DEPLOY_POOL=${DEPLOY_POOL:-$(record_get "$record" pool)}
    export NGINX_POOL_DIR=${NGINX_POOL_DIR:-$dir/nginx-pool}
  fi
}
