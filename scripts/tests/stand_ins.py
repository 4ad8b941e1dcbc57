"""Stand-ins for the two command-line tools `make test` cannot use for real: the Docker CLI (no
engine runs during `make test`; `make test-stack` uses the real one) and ssh to a remote host
(`make test-stack` uses a real sshd on 127.0.0.1). Each records its calls in a log file."""

from __future__ import annotations

import stat
from pathlib import Path

# `docker`: Compose v2's `version`, `config` and `config --services` answer; with
# $FAKE_MLFLOW_FILES set, `ps -q` names a container, postgres dumps each database as one line, and
# the tracking server's `exec find` and `exec tar` answer with that listing and the archive in
# $FAKE_MLFLOW_TAR; `info` answers after $FAKE_DOCKER_RELEASE exists (when set); `image inspect`
# knows the images in $FAKE_DOCKER_IMAGES (space-separated); `pull` finds nothing; `login` records
# its standard input; `ps` lists nothing.
FAKE_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >>"$FAKE_DOCKER_LOG"
case "$1" in
  compose)
    case " $* " in
      *" version "*) echo "Docker Compose version v2.99.0-stand-in" ;;
      *" config --services "*) printf '%s\n' backend frontend prometheus ;;
      *" config "*) ;;
      *" ps -q "*) [[ -n "${FAKE_MLFLOW_FILES:-}" ]] && echo "container-${*: -1}" ;;
      *" exec -T postgres psql "*) echo 1 ;;
      *" exec -T postgres pg_dump "*) echo "a dump of ${*: -1}" ;;
      *" exec -T mlflow find "*) cat "$FAKE_MLFLOW_FILES" ;;
      *" exec -T mlflow tar "*) cat "$FAKE_MLFLOW_TAR" ;;
      *) echo "stand-in: docker $* would change the engine" >>"$FAKE_DOCKER_LOG" ;;
    esac ;;
  info)
    while [[ -n "${FAKE_DOCKER_RELEASE:-}" && ! -e "$FAKE_DOCKER_RELEASE" ]]; do sleep 0.1; done ;;
  image)
    shift 2
    for image in "$@"; do [[ " ${FAKE_DOCKER_IMAGES:-} " == *" $image "* ]] || exit 1; done ;;
  pull) echo "Error response from daemon: manifest unknown" >&2; exit 1 ;;
  login) echo "login stdin: $(cat)" >>"$FAKE_DOCKER_LOG" ;;
  ps|inspect) ;;
  *) exit 1 ;;
esac
"""

# `ssh`: records its arguments, then runs the remote command here (in this machine's shell) with
# its standard input, as sshd would on the host.
FAKE_SSH = r"""#!/usr/bin/env bash
printf 'ssh' >>"$FAKE_SSH_LOG"; printf ' %q' "$@" >>"$FAKE_SSH_LOG"; echo >>"$FAKE_SSH_LOG"
exec sh -c "${@: -1}"
"""


def install(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path
