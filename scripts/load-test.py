#!/usr/bin/env python3
"""A bounded, fixed-rate load test: POST one real digit to the predict endpoint for N seconds.

Standard library only, so it runs on any deploy host. Prints a JSON summary (requests, failures
by kind, failure ratio, latency percentiles) and exits 1 when the failure ratio exceeds
--max-failure-ratio. Aim it only at your own stack (it refuses non-loopback hosts unless told).
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import select
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from digit_request import request_body  # beside this script, so on sys.path when it runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000/api/v1/predict")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second in total (default 40)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--api-key-file", type=Path, help="send the first key in this file as X-API-Key")
    parser.add_argument("--cacert", type=Path, help="trust this certificate (a self-signed edge)")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="requests come from this many clients in turn (X-Client-Id), as people behind one address "
        "would: the edge's canary share is per client (default: one client, no header)",
    )
    parser.add_argument("--max-failure-ratio", type=float, default=0.001)
    parser.add_argument("--allow-remote", action="store_true", help="allow a host that is not loopback")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument(
        "--stop-file", type=Path, help="stop early once this file exists (e.g. when the deploy under test has ended)"
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0 or args.workers < 1 or args.clients < 0:
        parser.error("--duration and --rate must be positive, --workers at least 1, --clients at least 0")
    host = urlsplit(args.url).hostname or ""
    if not args.allow_remote and not _is_loopback(host):
        parser.error(f"{host!r} is not a loopback address; pass --allow-remote to load another host")
    return args


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def first_key(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    raise SystemExit(f"load-test: no API key in {path}")


class Load:
    """Workers take send slots from one shared schedule, so the total rate stays fixed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = urlsplit(args.url)
        self.args = args
        self.body = request_body(7)
        self.headers = {"Content-Type": "application/json", "Idempotency-Key": "load-test-prediction"}
        if args.api_key_file:
            self.headers["X-API-Key"] = first_key(args.api_key_file)
        for header in args.header:
            name, _, value = header.partition(":")
            self.headers[name.strip()] = value.strip()
        self.tls = ssl.create_default_context(cafile=str(args.cacert) if args.cacert else None)
        self.lock = threading.Lock()
        self.next_slot = 0
        self.start = 0.0
        self.total_slots = int(args.duration * args.rate)
        self.outcomes: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.errors: list[dict[str, object]] = []  # the first few, with when they happened
        self.retried_on_closed_connection = 0

    def connect(self) -> http.client.HTTPConnection:
        port = self.url.port
        if self.url.scheme == "https":
            return http.client.HTTPSConnection(self.url.hostname, port, timeout=10, context=self.tls)
        return http.client.HTTPConnection(self.url.hostname, port, timeout=10)

    def take_slot(self) -> tuple[int, float] | None:
        with self.lock:
            if self.next_slot >= self.total_slots:
                return None
            if self.args.stop_file and self.next_slot % 10 == 0 and self.args.stop_file.exists():
                self.total_slots = self.next_slot
                return None
            slot = self.next_slot
            self.next_slot += 1
        return slot, self.start + slot / self.args.rate

    def post(self, connection: http.client.HTTPConnection, slot: int) -> str:
        headers = self.headers
        if self.args.clients:
            headers = {**headers, "X-Client-Id": f"load-test-{slot % self.args.clients}"}
        connection.request("POST", self.url.path or "/", body=self.body, headers=headers)
        response = connection.getresponse()
        response.read()
        return "ok" if response.status == 200 else f"http_{response.status}"

    def worker(self) -> None:
        connection = self.connect()
        while (taken := self.take_slot()) is not None:
            slot, due = taken
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if closed_by_server(connection):
                # What browsers and urllib3 do: a kept-alive connection the server has closed
                # (nginx does so with idle ones when it reloads) is not reused.
                connection.close()
                connection = self.connect()
            sent = time.monotonic()
            reused = connection.sock is not None
            retried = False
            try:
                try:
                    outcome = self.post(connection, slot)
                except CLOSED_BEFORE_ANSWER:
                    if not reused:
                        raise
                    # The server closed this kept-alive connection as the request went out, and
                    # answered nothing: send it again on a new one, once, as Go's HTTP client does
                    # for requests marked idempotent (a prediction changes nothing). Counted.
                    connection.close()
                    connection = self.connect()
                    retried = True
                    outcome = self.post(connection, slot)
            except (OSError, http.client.HTTPException) as error:
                outcome = f"error_{type(error).__name__}"
                connection.close()
                connection = self.connect()
            with self.lock:
                self.outcomes[outcome] += 1
                self.retried_on_closed_connection += retried
                self.latencies_ms.append((time.monotonic() - sent) * 1000)
                if outcome != "ok" and len(self.errors) < 20:
                    self.errors.append({"at_s": round(sent - self.start, 2), "outcome": outcome})
        connection.close()

    def run(self) -> dict[str, object]:
        self.start = time.monotonic()
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.args.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - self.start
        total = sum(self.outcomes.values())
        failures = total - self.outcomes["ok"]
        latencies = sorted(self.latencies_ms) or [0.0]
        return {
            "url": self.args.url,
            "duration_s": round(elapsed, 1),
            "requests": total,
            "rate_rps": round(total / elapsed, 1),
            "failures": failures,
            "failure_ratio": failures / total if total else 1.0,
            "outcomes": dict(self.outcomes),
            "first_errors": self.errors,
            "retried_on_closed_connection": self.retried_on_closed_connection,
            "latency_ms": {
                f"p{q}": round(latencies[min(len(latencies) - 1, int(len(latencies) * q / 100))], 1)
                for q in (50, 95, 99)
            },
        }


# A kept-alive connection closed by the server before any byte of the answer arrived.
CLOSED_BEFORE_ANSWER = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


def closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable has either been closed or sent junk: drop it."""
    if connection.sock is None:
        return False
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = Load(args).run()
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if summary["failure_ratio"] > args.max_failure_ratio:
        print(
            f"load-test: {summary['failures']} of {summary['requests']} requests failed "
            f"({summary['failure_ratio']:.3%} > {args.max_failure_ratio:.3%})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
