"""Throughput and latency of the inference service, next to the HTTP stack's own ceiling.

Starts one real server process (one worker, pinned to CPU 0) on 127.0.0.1 with the no-op
baseline endpoint enabled, drives it with wrk (pinned to CPU 1) and prints requests/s and
p50/p90/p99 at 16 and 64 connections for: predict with 784 floats, predict with a PNG,
a batch of 256, and the no-op that parses the same 784-float body through the same
middleware. Then in-process ONNX Runtime images/s at batch 1 and 256 (the compute ceiling).

    python benchmarks/bench.py --model-dir ../models [--duration 10] [--json results.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageFilter

from mnist_backend.model import load_model_version

HERE = Path(__file__).resolve().parent
DIGITS_FILE = HERE.parent / "tests" / "data" / "mnist_test_digits.json"
LUA_SCRIPT = HERE / "post_body.lua"


@dataclass
class WrkResult:
    scenario: str
    connections: int
    requests_per_s: float
    images_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models")))
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", default="16,64", help="comma-separated (default 16,64)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def real_digit() -> np.ndarray:
    digits = json.loads(DIGITS_FILE.read_text())["images"]
    return np.asarray(digits["3"], dtype=np.uint8)


def request_bodies(workdir: Path) -> dict[str, tuple[Path, int]]:
    """JSON body files per scenario, with how many images each request carries."""
    digit = real_digit()
    floats = (digit / 255.0).round(4).ravel().tolist()
    drawing = Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR).filter(ImageFilter.MaxFilter(5))
    png = io.BytesIO()
    drawing.save(png, format="PNG")
    bodies = {
        "noop (784 floats)": ({"image": floats}, 1),
        "predict 784 floats": ({"image": floats}, 1),
        "predict PNG 280x280": ({"image_base64": base64.b64encode(png.getvalue()).decode()}, 1),
        "batch of 256": ({"images": [floats] * 256}, 256),
    }
    paths = {}
    for index, (name, (payload, images)) in enumerate(bodies.items()):
        path = workdir / f"body-{index}.json"
        path.write_text(json.dumps(payload))
        paths[name] = (path, images)
    return paths


def pinned(cpu: int, command: list[str]) -> list[str]:
    """Pin to one CPU when there are two or more, so server and load generator do not fight."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *command]
    return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MODEL_DIR": str(model_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ENABLE_BENCH_ENDPOINT": "true",
        "ENVIRONMENT": "dev",
        "LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        pinned(0, [sys.executable, "-m", "mnist_backend"]), env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: the server exited; its log:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"bench: the server was not ready within 60 s; its log:\n{log_path.read_text()[-3000:]}")


_LATENCY = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, body: Path, connections: int, duration: int) -> dict[str, float]:
    command = pinned(
        1,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(LUA_SCRIPT),
            url,
        ],
    )
    output = subprocess.run(
        command, env={**os.environ, "BODY_FILE": str(body)}, capture_output=True, text=True, check=True
    ).stdout
    latency = {int(p): float(v) * _UNIT_MS[u] for p, v, u in _LATENCY.findall(output)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency[50],
        "p90_ms": latency[90],
        "p99_ms": latency[99],
        "non_2xx": int(re.search(r"NON2XX (\d+)", output).group(1)),
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def onnx_images_per_second(model_dir: Path) -> dict[int, float]:
    """In-process ONNX Runtime, one thread, as the server configures it: the compute ceiling."""
    model = load_model_version(model_dir)
    rates = {}
    for batch, calls in ((1, 2000), (256, 20)):
        pixels = np.random.default_rng(0).random((batch, 28, 28), dtype=np.float32)
        for _ in range(10):
            model.predict_proba(pixels)
        started = time.perf_counter()
        for _ in range(calls):
            model.predict_proba(pixels)
        rates[batch] = batch * calls / (time.perf_counter() - started)
    return rates


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed; run scripts/install-system-deps.sh (Debian package 'wrk')")
    if not (args.model_dir / "CURRENT").is_file():
        sys.exit(f"bench: no model in {args.model_dir}; run `make train` first")
    connections = [int(c) for c in args.connections.split(",")]
    ceiling = onnx_images_per_second(args.model_dir)

    results: list[WrkResult] = []
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        workdir = Path(tmp)
        bodies = request_bodies(workdir)
        port = free_port()
        server = start_server(args.model_dir, port, workdir / "server.log")
        routes = {"noop (784 floats)": "/api/v1/bench/noop", "batch of 256": "/api/v1/predict/batch"}
        try:
            for name, (body, images) in bodies.items():
                url = f"http://127.0.0.1:{port}{routes.get(name, '/api/v1/predict')}"
                run_wrk(url, body, 4, 2)  # warm up
                for conns in connections:
                    print(f"  wrk: {name}, {conns} connections, {args.duration} s ...", file=sys.stderr, flush=True)
                    stats = run_wrk(url, body, conns, args.duration)
                    results.append(WrkResult(name, conns, images_per_s=stats["requests_per_s"] * images, **stats))
        finally:
            server.terminate()
            server.wait(timeout=30)

    print_report(results, ceiling)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"wrk": [asdict(r) for r in results], "onnx_images_per_s": ceiling}, indent=2))


def print_report(results: list[WrkResult], ceiling: dict[int, float]) -> None:
    print("\nHTTP, one worker process on 127.0.0.1 (wrk --latency)")
    print(
        f"{'scenario':<22}{'conns':>6}{'req/s':>10}{'images/s':>11}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )
    for r in results:
        print(
            f"{r.scenario:<22}{r.connections:>6}{r.requests_per_s:>10.0f}{r.images_per_s:>11.0f}"
            f"{r.p50_ms:>9.2f}{r.p90_ms:>9.2f}{r.p99_ms:>9.2f}{r.non_2xx + r.socket_errors:>8}"
        )
    print(
        "\nIn-process ONNX Runtime (1 thread): "
        f"batch 1: {ceiling[1]:.0f} images/s ({1e6 / ceiling[1]:.0f} us/image), batch 256: {ceiling[256]:.0f} images/s"
    )

    def find(name: str, conns: int) -> WrkResult | None:
        return next((r for r in results if r.scenario == name and r.connections == conns), None)

    print("\nTargets")
    for conns in sorted({r.connections for r in results}):
        noop, predict, batch = (
            find("noop (784 floats)", conns),
            find("predict 784 floats", conns),
            find("batch of 256", conns),
        )
        if noop and predict:
            ratio = predict.requests_per_s / noop.requests_per_s
            print(
                f"  predict / no-op throughput at {conns:>2} connections: {ratio:.2f}  (target >= 0.60)"
                f"  {'ok' if ratio >= 0.6 else 'MISSED'}"
            )
        if batch:
            ratio = batch.images_per_s / ceiling[256]
            print(
                f"  batch-256 images/s / in-process ONNX at {conns:>2} connections: {ratio:.2f}  (target >= 0.50)"
                f"  {'ok' if ratio >= 0.5 else 'MISSED'}"
            )
    p16 = find("predict 784 floats", 16)
    if p16:
        verdict = "ok" if p16.p99_ms <= 10 else "MISSED"
        print(f"  predict p99 at 16 connections: {p16.p99_ms:.2f} ms  (target <= 10 ms)  {verdict}")


if __name__ == "__main__":
    main()
