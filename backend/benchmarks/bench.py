"""Throughput and latency of the inference service, against the smallest correct server for the same model.

Starts one real server process (one worker, pinned to CPU 0) on 127.0.0.1 with production
defaults (API keys, JSON access log on) and the no-op baseline endpoint enabled, drives it
with wrk (pinned to CPU 1) and prints requests/s and p50/p90/p95/p99 at 16 and 64
connections for: predict with 784 floats, predict with a 280x280 PNG (grayscale as the
drawing page sends it, and RGBA on a transparent background as other drawing clients send
it), a batch of 256, the Open Inference Protocol's infer with one image as JSON and with 256
as binary tensors, and the no-op that parses the same 784-float body through the same
middleware and key check. Then in-process ONNX Runtime images/s at batch 1 and 256. The
server's own metrics give each predicting scenario's time inside ONNX Runtime per image, and
a float prediction's time per request is split into the no-op's, the model's and the rest; a
PNG prediction's into the float prediction's, the canvas preprocessing's (timed in-process on
the same image, Pillow's decode shown apart) and the rest; and each latency is set against
what Little's law allows at that many connections.

**The reference** (``reference_server.py``): the smallest correct server for the same model
(raw body, orjson, NumPy, ONNX Runtime; PNGs decoded and preprocessed with the hub's own code),
started beside ours, pinned to the same core, sent the same bodies in the same rounds. Every
row it serves reports ours / reference and each server's CPU time per request (its process's
user + system time over the requests wrk completed), and the same for the smallest FastAPI app
with the same routes (``--fastapi``): the framework's own share. ``--price-list`` also serves our server
with one feature taken out at a time (``feature_off_server.py``: access log, key check,
request ids, HTTP metrics, body size limit, prediction metrics, drift statistics, body
validation) and prints what each costs per request: what the service would save without it.

A shared 2-core machine drifts by 20-30 % within minutes, more than most changes are worth.
So every scenario runs ``--repeat`` times, round robin (scenarios, and the two versions when
comparing, interleaved back to back), and the report gives the median with each figure's
spread; the ONNX Runtime ceiling is measured in every round too.

    python benchmarks/bench.py --model-dir ../models [--duration 5] [--repeat 3] [--json results.json]
    python benchmarks/bench.py --compare-src /path/to/other/checkout/backend/src   # before/after
    python benchmarks/bench.py --server-src /path/to/other/checkout/backend/src    # bench that code alone
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageFilter
from prometheus_client.parser import text_string_to_metric_families

from mnist_backend.client_input import decode_base64_image, preprocess_image
from mnist_backend.config import Settings
from mnist_backend.model import load_model_version

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run as a script or loaded by path (tests): its sibling either way
import feature_off_server  # noqa: E402 - after the path it is found on

# The hub's one copy of the held-out digits (the drawing page ships them).
DIGITS_FILE = HERE.parents[1] / "frontend" / "src" / "mnist_frontend" / "example_digits.json"
LUA_SCRIPT = HERE / "post_body.lua"


THIS, COMPARED, REFERENCE, FASTAPI = "this", "compared", "reference", "reference FastAPI"
WITHOUT = "without "  # a price-list server: "without access_log", ...
REFERENCE_SCRIPT = HERE / "reference_server.py"
FEATURE_OFF_SCRIPT = HERE / "feature_off_server.py"
# What the price list can take out: feature_off_server.py owns the list (it takes each one out).
FEATURES = feature_off_server.CHOICES
# The price list is measured on the float prediction at one connection count (the first given).
PRICE_SCENARIO = "predict 784 floats"


@dataclass
class WrkResult:
    """One scenario on one version: the median of its runs (errors summed over them)."""

    version: str
    scenario: str
    connections: int
    requests_per_s: float
    images_per_s: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    spread: float  # (max - min) / median of the runs' requests/s: how far to trust a difference
    runs_requests_per_s: list[float]
    # ONNX Runtime's time per image inside the loaded server (its own metrics); None without a model call.
    model_us_per_image: float | None = None
    # The server process's CPU time (user + system, all threads) per request wrk completed.
    cpu_us_per_request: float | None = None


def summarize(version: str, scenario: str, connections: int, images: int, runs: list[dict[str, float]]) -> WrkResult:
    rates = [run["requests_per_s"] for run in runs]
    rate = statistics.median(rates)
    return WrkResult(
        version,
        scenario,
        connections,
        requests_per_s=rate,
        images_per_s=rate * images,
        **{key: statistics.median(run[key] for run in runs) for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")},
        non_2xx=int(sum(run["non_2xx"] for run in runs)),
        socket_errors=int(sum(run["socket_errors"] for run in runs)),
        spread=(max(rates) - min(rates)) / rate if rate else 0.0,
        runs_requests_per_s=[round(r, 1) for r in rates],
        model_us_per_image=statistics.median(model_times) if (model_times := _model_times(runs)) else None,
        cpu_us_per_request=statistics.median(cpu) if (cpu := [r["cpu_us_per_request"] for r in runs]) else None,
    )


def _model_times(runs: list[dict[str, float]]) -> list[float]:
    return [run["model_us_per_image"] for run in runs if run.get("model_us_per_image") is not None]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models")))
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario, round robin; medians (default 3)")
    parser.add_argument("--connections", default="16,64", help="comma-separated (default 16,64)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--server-src", type=Path, help="serve the mnist_backend package found here (another checkout's backend/src)"
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        help="also serve this checkout's backend/src and interleave its runs with ours: a before/after table",
    )
    parser.add_argument(
        "--price-list",
        nargs="?",
        const=",".join(FEATURES),
        default="",
        metavar="FEATURE,...",
        help=f"also serve ours without each feature in turn (default all: {', '.join(FEATURES)}) "
        "and print what each costs per request",
    )
    args = parser.parse_args()
    args.price_list = [feature for feature in args.price_list.split(",") if feature]
    if unknown := sorted(set(args.price_list) - set(FEATURES)):
        parser.error(f"--price-list: no feature {', '.join(unknown)} (there are: {', '.join(FEATURES)})")
    if args.repeat < 1 or args.duration < 1:
        parser.error("--repeat and --duration must be at least 1")
    for option, path in (("--server-src", args.server_src), ("--compare-src", args.compare_src)):
        if path and not (path / "mnist_backend" / "__init__.py").is_file():
            parser.error(f"{option} {path}: no mnist_backend package there (give a checkout's backend/src)")
    return args


def real_digit() -> np.ndarray:
    digits = json.loads(DIGITS_FILE.read_text())["images"]
    return np.asarray(digits["3"], dtype=np.uint8)


V2_INFER = "/v2/models/mnist-cnn/infer"
V2_SINGLE, V2_BATCH = "v2 infer 1 JSON", "v2 infer 256 binary"
ROUTES = {
    "noop (784 floats)": "/api/v1/bench/noop",
    "batch of 256": "/api/v1/predict/batch",
    V2_SINGLE: V2_INFER,
    V2_BATCH: V2_INFER,
}


@dataclass(frozen=True)
class Body:
    path: Path
    images: int
    header_length: int | None = None  # binary tensors follow a JSON header this long


def request_bodies(workdir: Path) -> dict[str, Body]:
    """Body files per scenario, with how many images each request carries."""
    digit = real_digit()
    floats = (digit / 255.0).round(4).ravel().tolist()
    drawing = Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR).filter(ImageFilter.MaxFilter(5))
    transparent = Image.new("RGBA", drawing.size, (30, 60, 200, 0))  # coloured ink, the stroke only in alpha
    transparent.putalpha(drawing)
    v2_single = {"inputs": [{"name": "image", "shape": [1, 784], "datatype": "FP32", "data": floats}]}
    batch = np.repeat((digit / 255.0).astype("<f4")[np.newaxis, np.newaxis], 256, axis=0)
    v2_header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": list(batch.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": batch.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    bodies = {
        "noop (784 floats)": (json.dumps({"image": floats}).encode(), 1, None),
        "predict 784 floats": (json.dumps({"image": floats}).encode(), 1, None),
        "predict PNG gray": (json.dumps({"image_base64": png_base64(drawing)}).encode(), 1, None),
        "predict PNG RGBA": (json.dumps({"image_base64": png_base64(transparent)}).encode(), 1, None),
        "batch of 256": (json.dumps({"images": [floats] * 256}).encode(), 256, None),
        V2_SINGLE: (json.dumps(v2_single).encode(), 1, None),
        V2_BATCH: (v2_header + batch.tobytes(), 256, len(v2_header)),
    }
    paths = {}
    for index, (name, (content, images, header_length)) in enumerate(bodies.items()):
        path = workdir / f"body-{index}.bin"
        path.write_bytes(content)
        paths[name] = Body(path, images, header_length)
    return paths


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pinned(cpu: int, command: list[str]) -> list[str]:
    """Pin to one CPU when there are two or more, so server and load generator do not fight."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *command]
    return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BENCH_API_KEY = "bench-key-local-server"  # pragma: allowlist secret - a throwaway key for the local benchmark server
BATCH_CONNECTIONS = 4


def model_time(base_url: str) -> tuple[float, float]:
    """The server's own count so far: seconds inside ONNX Runtime and images through it (all kinds)."""
    text = httpx.get(f"{base_url}/metrics", headers={"X-API-Key": BENCH_API_KEY}, timeout=10).raise_for_status().text
    seconds = images = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mnist_inference_duration_seconds_sum":
                seconds += sample.value
            elif sample.name == "mnist_inference_images_total":
                images += sample.value
    return seconds, images


def server_env(model_dir: Path, port: int, server_src: Path | None, workdir: Path) -> dict[str, str]:
    # Corrections, as production takes them: every answer signed (its own SQLite per server; the
    # benchmark sends none, the store is never on the predict path).
    key_file = workdir / "feedback_key"
    if not key_file.exists():
        key_file.write_text("bench-feedback-signing-key-of-32-characters\n")  # pragma: allowlist secret
    env = {
        **os.environ,
        "MODEL_DIR": str(model_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ENABLE_BENCH_ENDPOINT": "true",
        # Production defaults: keys checked on every request, JSON access log on.
        "ENVIRONMENT": "production",
        "API_KEYS": BENCH_API_KEY,
        "LOG_FORMAT": "json",
        "ACCESS_LOG": "true",
        "FEEDBACK_DATABASE_URL": f"sqlite:///{workdir / f'feedback-{port}.sqlite3'}",
        "FEEDBACK_KEY_FILE": str(key_file),
    }
    if server_src:
        env["PYTHONPATH"] = str(server_src.resolve())
    return env


def start_server(model_dir: Path, port: int, log_path: Path, server_src: Path | None) -> subprocess.Popen:
    """Ours, as ``python -m mnist_backend`` runs it (another checkout's with ``server_src``)."""
    command = [sys.executable, "-m", "mnist_backend"]
    return start_process(command, server_env(model_dir, port, server_src, log_path.parent), port, log_path, "/ready")


def start_reference(model_dir: Path, port: int, log_path: Path, fastapi: bool = False) -> subprocess.Popen:
    command = [sys.executable, str(REFERENCE_SCRIPT), "--model-dir", str(model_dir), "--port", str(port)]
    return start_process(command + (["--fastapi"] if fastapi else []), dict(os.environ), port, log_path, "/")


def start_without(
    feature: str, model_dir: Path, port: int, log_path: Path, server_src: Path | None
) -> subprocess.Popen:
    """Ours less ``feature`` (the same code as ours: ``server_src`` when given)."""
    command = [sys.executable, str(FEATURE_OFF_SCRIPT), feature]
    return start_process(command, server_env(model_dir, port, server_src, log_path.parent), port, log_path, "/ready")


def start_process(command: list[str], env: dict[str, str], port: int, log_path: Path, probe: str) -> subprocess.Popen:
    """Start a server pinned to CPU 0; return once ``probe`` answers (any status but 5xx)."""
    process = subprocess.Popen(pinned(0, command), env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: {Path(command[1]).name} exited; its log:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1).status_code < 500:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"bench: {Path(command[1]).name} was not ready within 60 s; its log:\n{log_path.read_text()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process so far, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_PERCENTILES = re.compile(r"^PERCENTILES_US (\d+) (\d+) (\d+) (\d+)$", re.MULTILINE)


def run_wrk(url: str, body: Body, connections: int, duration: int) -> dict[str, float]:
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
        command,
        env={
            **os.environ,
            "BODY_FILE": str(body.path),
            "API_KEY": BENCH_API_KEY,
            "INFERENCE_HEADER_LENGTH": "" if body.header_length is None else str(body.header_length),
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    percentiles = _PERCENTILES.search(output)
    total = re.search(r"(\d+) requests in ([\d.]+)s", output)
    non_2xx_line = re.search(r"NON2XX (\d+)", output)
    if not (percentiles and total and non_2xx_line):
        sys.exit(f"bench: wrk's output lacks the figures post_body.lua prints; it was:\n{output[-2000:]}")
    p50, p90, p95, p99 = (int(us) / 1000 for us in percentiles.groups())
    non_2xx = int(non_2xx_line.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        # Answered with 2xx only: a fast stream of 503s is not throughput.
        "requests_per_s": (int(total.group(1)) - non_2xx) / float(total.group(2)),
        "requests": int(total.group(1)),
        "p50_ms": p50,
        "p90_ms": p90,
        "p95_ms": p95,
        "p99_ms": p99,
        "non_2xx": non_2xx,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def onnx_images_per_second(model_dir: Path) -> dict[int, float]:
    """In-process ONNX Runtime, one thread, as the server configures it: the compute ceiling."""
    model = load_model_version(model_dir)
    rates = {}
    for batch, calls in ((1, 2000), (256, 20)):
        pixels = np.random.default_rng(0).random((batch, 28, 28), dtype=np.float32)
        rates[batch] = batch * 1e6 / _mean_us(lambda pixels=pixels: model.predict_proba(pixels), calls)
    return rates


def preprocessing_us(bodies: dict[str, Body]) -> dict[str, dict[str, float]]:
    """In-process, per PNG scenario, microseconds per image: Pillow's decode alone, and the whole
    canvas preprocessing the route runs before the model (header check and decode included)."""
    max_pixels = Settings.model_fields["max_image_pixels"].default
    times = {}
    for name, body in bodies.items():
        if body.header_length is not None:
            continue
        payload = json.loads(body.path.read_text()).get("image_base64")
        if payload is None:
            continue
        times[name] = {
            "decode_us": _mean_us(lambda payload=payload: decode_base64_image(payload, max_pixels).load()),
            "preprocessing_us": _mean_us(
                lambda payload=payload: preprocess_image(decode_base64_image(payload, max_pixels))
            ),
        }
    return times


def _mean_us(call: Callable[[], object], calls: int = 200) -> float:
    for _ in range(10):
        call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return 1e6 * (time.perf_counter() - started) / calls


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed; run scripts/install-system-deps.sh (Debian package 'wrk')")
    if not (args.model_dir / "CURRENT").is_file():
        sys.exit(f"bench: no model in {args.model_dir}; run `make train` first")
    connections = [int(c) for c in args.connections.split(",")]
    sources = {THIS: args.server_src, **({COMPARED: args.compare_src} if args.compare_src else {})}

    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        workdir = Path(tmp)
        bodies = request_bodies(workdir)
        ports, servers = {}, {}
        try:
            for version, source in sources.items():
                ports[version] = free_port()
                log = workdir / f"server-{version}.log"
                servers[version] = start_server(args.model_dir, ports[version], log, source)
            for version in (REFERENCE, FASTAPI):
                ports[version] = free_port()
                log = workdir / f"{version.replace(' ', '-')}.log"
                servers[version] = start_reference(args.model_dir, ports[version], log, fastapi=version == FASTAPI)
            for feature in args.price_list:
                version = WITHOUT + feature
                ports[version] = free_port()
                servers[version] = start_without(
                    feature, args.model_dir, ports[version], workdir / f"{feature}.log", args.server_src
                )
            pids = {version: server.pid for version, server in servers.items()}
            results, ceilings, decoding = run_rounds(args, bodies, connections, ports, pids)
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=30)

    ceiling = {batch: statistics.median(c[batch] for c in ceilings) for batch in (1, 256)}
    preprocessing = {
        name: {key: statistics.median(d[name][key] for d in decoding) for key in decoding[0][name]}
        for name in decoding[0]
    }
    print_report(results, ceiling, preprocessing, args.repeat, args.duration)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "repeat": args.repeat,
            "duration_s": args.duration,
            "compared_src": str(args.compare_src) if args.compare_src else None,
            "wrk": [asdict(r) for r in results],
            "onnx_images_per_s": ceiling,
            "onnx_images_per_s_rounds": ceilings,
            "png_preprocessing_us": preprocessing,
            "png_preprocessing_us_rounds": decoding,
        }
        args.json.write_text(json.dumps(report, indent=2))


def run_rounds(
    args: argparse.Namespace,
    bodies: dict[str, Body],
    connections: list[int],
    ports: dict[str, int],
    pids: dict[str, int],
) -> tuple[list[WrkResult], list[dict[int, float]], list[dict[str, dict[str, float]]]]:
    """Every (scenario, connections) on every version, ``--repeat`` rounds; medians per cell.

    Each round also measures the in-process ceilings: ONNX Runtime, and PNG preprocessing."""
    # A client of the batch route uses at most MAX_CONCURRENT_BATCHES (4) connections; more
    # would measure how fast the service says 503.
    plan = [
        (name, conns)
        for name, body in bodies.items()
        for conns in (sorted({min(c, BATCH_CONNECTIONS) for c in connections}) if body.images > 1 else connections)
    ]
    # A compared checkout older than a route (the /v2 protocol) is not run on it, nor the
    # reference on what it does not serve (the no-op, /v2); the price list is one row.
    served = {
        (version, name)
        for version in ports
        for name in bodies
        if (name == PRICE_SCENARIO if version.startswith(WITHOUT) else _serves(ports[version], name))
    }
    runs: dict[tuple[str, str, int], list[dict[str, float]]] = defaultdict(list)
    ceilings, decoding, warmed = [], [], set()
    # Time for the requests wrk abandoned at its end to finish: a second, less for short runs.
    settle = min(1.0, args.duration / 2)
    for round_index in range(args.repeat):
        ceilings.append(onnx_images_per_second(args.model_dir))
        decoding.append(preprocessing_us(bodies))
        # Alternate which version goes first, so neither always runs on the warmer machine.
        versions = list(ports) if round_index % 2 == 0 else list(reversed(ports))
        for name, conns in plan:
            body = bodies[name]
            for version in (v for v in versions if (v, name) in served):
                if version.startswith(WITHOUT) and conns != connections[0]:
                    continue
                url = f"http://127.0.0.1:{ports[version]}{ROUTES.get(name, '/api/v1/predict')}"
                if (version, name) not in warmed:
                    warmed.add((version, name))
                    run_wrk(url, body, 4, min(2, args.duration))  # warm up once per scenario and version
                    time.sleep(settle)  # the requests wrk abandoned when it stopped finish first
                label = f" [{version}]" if len(ports) > 1 else ""
                print(
                    f"  round {round_index + 1}/{args.repeat}: {name}{label}, {conns} connections, "
                    f"{args.duration} s ...",
                    file=sys.stderr,
                    flush=True,
                )
                base_url = f"http://127.0.0.1:{ports[version]}"
                metered = version not in (REFERENCE, FASTAPI)  # the references have no /metrics
                seconds_before, images_before = model_time(base_url) if metered else (0.0, 0.0)
                cpu_before = cpu_seconds(pids[version])
                run = run_wrk(url, body, conns, args.duration)
                time.sleep(settle)
                run["cpu_us_per_request"] = 1e6 * (cpu_seconds(pids[version]) - cpu_before) / max(run["requests"], 1)
                if metered:
                    seconds_after, images_after = model_time(base_url)  # abandoned requests included: a mean
                    if images_after > images_before:
                        run["model_us_per_image"] = (
                            1e6 * (seconds_after - seconds_before) / (images_after - images_before)
                        )
                runs[(version, name, conns)].append(run)
    results = [
        summarize(version, name, conns, bodies[name].images, runs[(version, name, conns)])
        for version in ports
        for name, conns in plan
        if (version, name, conns) in runs
    ]
    return results, ceilings, decoding


def _serves(port: int, scenario: str) -> bool:
    """Whether the server has the scenario's route (an older checkout may not): not a 404."""
    route = ROUTES.get(scenario, "/api/v1/predict")
    reply = httpx.post(f"http://127.0.0.1:{port}{route}", headers={"X-API-Key": BENCH_API_KEY}, json={}, timeout=10)
    return reply.status_code != 404


def print_report(
    results: list[WrkResult],
    ceiling: dict[int, float],
    preprocessing: dict[str, dict[str, float]],
    repeat: int,
    duration: int,
) -> None:
    print(
        f"\nHTTP, one worker process on 127.0.0.1 (wrk; production defaults, access log on); "
        f"median of {repeat} runs of {duration} s each"
    )
    print(
        f"{'scenario':<20}{'conns':>6}{'req/s':>9}{'spread':>8}{'images/s':>10}{'p50 ms':>8}{'p90 ms':>8}"
        f"{'p95 ms':>8}{'p99 ms':>8}{'errors':>7}{'model us/img':>13}"
    )
    ours = [r for r in results if r.version == THIS]
    for r in ours:
        print(
            f"{r.scenario:<20}{r.connections:>6}{r.requests_per_s:>9.0f}{r.spread:>8.0%}{r.images_per_s:>10.0f}"
            f"{r.p50_ms:>8.2f}{r.p90_ms:>8.2f}{r.p95_ms:>8.2f}{r.p99_ms:>8.2f}{r.non_2xx + r.socket_errors:>7}"
            f"{'-' if r.model_us_per_image is None else f'{r.model_us_per_image:.0f}':>13}"
        )
    print(
        "\nIn-process ONNX Runtime (1 thread): "
        f"batch 1: {ceiling[1]:.0f} images/s ({1e6 / ceiling[1]:.0f} us/image), batch 256: {ceiling[256]:.0f} images/s"
    )
    compared = {(r.scenario, r.connections): r for r in results if r.version == COMPARED}
    if compared:
        print_comparison(ours, compared)
    reference = {(r.scenario, r.connections): r for r in results if r.version == REFERENCE}
    fastapi = {(r.scenario, r.connections): r for r in results if r.version == FASTAPI}
    print_reference(ours, reference, fastapi)
    without = {r.version[len(WITHOUT) :]: r for r in results if r.version.startswith(WITHOUT)}
    if without:
        print_price_list(ours, without)
    print_targets(ours, ceiling, reference)
    print_time_split(ours, ceiling)
    print_png_split(ours, preprocessing)
    print_latency_bound(ours)


def print_reference(
    ours: list[WrkResult], reference: dict[tuple[str, int], WrkResult], fastapi: dict[tuple[str, int], WrkResult]
) -> None:
    """Ours, and the smallest FastAPI app, against the smallest correct server, row by row."""
    print(
        "\nAgainst the reference server (reference_server.py: same model, same core, same bodies, same rounds;"
        " FastAPI: the smallest FastAPI app with the same routes)"
    )
    print(
        f"{'scenario':<20}{'conns':>6}{'ours req/s':>11}{'ref req/s':>10}{'ours/ref':>9}"
        f"{'p99 ours':>10}{'p99 ref':>9}{'CPU us/req ours':>17}{'ref':>7}{'FastAPI/ref':>13}{'FastAPI us':>12}"
    )
    for r in ours:
        ref, minimal = reference.get((r.scenario, r.connections)), fastapi.get((r.scenario, r.connections))
        if ref is None or not ref.requests_per_s:
            continue
        framework = f"{minimal.requests_per_s / ref.requests_per_s:.2f}" if minimal else "-"
        print(
            f"{r.scenario:<20}{r.connections:>6}{r.requests_per_s:>11.0f}{ref.requests_per_s:>10.0f}"
            f"{r.requests_per_s / ref.requests_per_s:>9.2f}{r.p99_ms:>10.2f}{ref.p99_ms:>9.2f}"
            f"{_us(r.cpu_us_per_request):>17}{_us(ref.cpu_us_per_request):>7}"
            f"{framework:>13}{_us(minimal.cpu_us_per_request if minimal else None):>12}"
        )


def print_price_list(ours: list[WrkResult], without: dict[str, WrkResult]) -> None:
    """What each feature costs: the CPU time per request it adds to the float prediction."""
    feature_row = next(iter(without.values()))
    full = find_result(ours, feature_row.scenario, feature_row.connections)
    if full is None or full.cpu_us_per_request is None:
        return
    print(
        f"\nPrice list: {feature_row.scenario}, {feature_row.connections} connections, with everything on: "
        f"{full.requests_per_s:.0f} req/s, {full.cpu_us_per_request:.0f} us of CPU a request"
    )
    header = f"{'without':<22}{'req/s':>8}{'CPU us/req':>12}{'the feature costs':>19}{'p99 ms':>9}"
    print(f"{header} (all on: p99 {full.p99_ms:.2f} ms)")
    for feature, r in sorted(without.items(), key=lambda item: -(full.cpu_us_per_request - _cpu(item[1]))):
        cost = full.cpu_us_per_request - _cpu(r)
        print(f"{feature:<22}{r.requests_per_s:>8.0f}{_us(r.cpu_us_per_request):>12}{cost:>15.0f} us{r.p99_ms:>9.2f}")
    print("  (a cost within a few us of 0, or below it, is within the machine's noise)")


def _cpu(result: WrkResult) -> float:
    return result.cpu_us_per_request or 0.0


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_time_split(results: list[WrkResult], ceiling: dict[int, float]) -> None:
    """What a float prediction adds to the no-op, per request, and how much of it is the model.

    One saturated worker on one core: 1 / (requests/s) is the CPU time of one request.
    """
    print("\nWhere a float prediction's time goes (CPU time per request: 1 / req/s on the one core)")
    for conns in sorted({r.connections for r in results}):
        noop, floats = (
            find_result(results, "noop (784 floats)", conns),
            find_result(results, "predict 784 floats", conns),
        )
        if not (noop and floats and noop.requests_per_s and floats.requests_per_s and floats.model_us_per_image):
            continue
        noop_us, floats_us = 1e6 / noop.requests_per_s, 1e6 / floats.requests_per_s
        model_us = floats.model_us_per_image
        print(
            f"  {conns} connections: predict {floats_us:.0f} us = no-op {noop_us:.0f} + ONNX Runtime {model_us:.0f} "
            f"+ the rest {floats_us - noop_us - model_us:.0f}; the model alone allows at most "
            f"{noop_us / (noop_us + model_us):.2f} x the no-op"
        )
    print(f"  (ONNX Runtime in-process, back to back: {1e6 / ceiling[1]:.0f} us per image)")
    print(
        "  model us/img is wall time inside ONNX Runtime (the server's mnist_inference_duration_seconds);"
        " batches run two at a time on the one core, so theirs includes the other's share"
    )


def print_png_split(results: list[WrkResult], preprocessing: dict[str, dict[str, float]]) -> None:
    """What a PNG prediction adds to a float prediction: mostly the decode, which no code of ours runs."""
    print(
        "\nWhere a PNG prediction's time goes (CPU time per request; the preprocessing timed in-process,"
        " with this checkout's code, on the same image)"
    )
    for name, times in preprocessing.items():
        prep_us, decode_us = times["preprocessing_us"], times["decode_us"]
        for conns in sorted({r.connections for r in results}):
            png, floats = find_result(results, name, conns), find_result(results, "predict 784 floats", conns)
            if not (png and floats and png.requests_per_s and floats.requests_per_s):
                continue
            png_us, floats_us = 1e6 / png.requests_per_s, 1e6 / floats.requests_per_s
            print(
                f"  {name}, {conns} connections: {png_us:.0f} us = predict floats {floats_us:.0f}"
                f" + canvas preprocessing {prep_us:.0f} (Pillow's PNG decode: {decode_us:.0f})"
                f" + the rest {png_us - floats_us - prep_us:.0f}; preprocessing alone allows at most"
                f" {floats_us / (floats_us + prep_us):.2f} x floats"
            )


def print_latency_bound(results: list[WrkResult]) -> None:
    """Little's law: a closed loop of N connections at R req/s waits N / R on average.

    So a p99 under 100 ms at N connections needs at least N / 0.1 s requests/s, whatever the
    scheduling: the CPU time of a request on the one core must stay under 0.1 s / N.
    """
    print("\nLatency against throughput (Little's law: mean latency = connections / req/s)")
    for conns in sorted({r.connections for r in results if r.scenario.startswith("predict PNG")}):
        needed, budget_us = conns / 0.1, 1e5 / conns
        print(f"  {conns} connections: p99 <= 100 ms needs >= {needed:.0f} req/s, <= {budget_us:.0f} us a request")
        for r in results:
            if r.connections == conns and r.requests_per_s and r.scenario.startswith("predict"):
                mean_ms, request_us = 1e3 * conns / r.requests_per_s, 1e6 / r.requests_per_s
                print(
                    f"    {r.scenario:<20}{r.requests_per_s:>6.0f} req/s: mean {mean_ms:.1f} ms,"
                    f" p99 {r.p99_ms:.1f} ms, {request_us:.0f} us a request"
                )


def print_comparison(ours: list[WrkResult], compared: dict[tuple[str, int], WrkResult]) -> None:
    print("\nBefore (--compare-src) and after (this code), interleaved in the same rounds")
    print(f"{'scenario':<20}{'conns':>6}{'req/s before':>14}{'after':>8}{'change':>8}{'p99 before':>12}{'after':>8}")
    for r in ours:
        before = compared.get((r.scenario, r.connections))
        if before is None:
            print(f"{r.scenario:<20}{r.connections:>6}{'(not served before)':>22}{r.requests_per_s:>8.0f}")
            continue
        change = r.requests_per_s / before.requests_per_s - 1 if before.requests_per_s else 0.0
        # A change smaller than the runs' own spread is not a measured difference.
        noise = " (within spread)" if abs(change) < max(r.spread, before.spread) else ""
        print(
            f"{r.scenario:<20}{r.connections:>6}{before.requests_per_s:>14.0f}{r.requests_per_s:>8.0f}"
            f"{change:>+8.0%}{before.p99_ms:>12.2f}{r.p99_ms:>8.2f}{noise}"
        )


def find_result(results: list[WrkResult], scenario: str, connections: int) -> WrkResult | None:
    return next((r for r in results if r.scenario == scenario and r.connections == connections), None)


def print_targets(
    results: list[WrkResult], ceiling: dict[int, float], reference: dict[tuple[str, int], WrkResult]
) -> None:
    def verdict(name: str, value: float, target: float, at_least: bool = True, errors: int = 0) -> None:
        ok = (value >= target if at_least else value <= target) and errors == 0
        print(
            f"  {name:<58}{value:>8.2f}  (target {'>=' if at_least else '<='} {target:g})  {'ok' if ok else 'MISSED'}"
        )

    print("\nTargets (MISSED also when a scenario had errors)")
    for conns in sorted({r.connections for r in results}):
        floats, batch = find_result(results, "predict 784 floats", conns), find_result(results, "batch of 256", conns)
        for name in ("predict 784 floats", "predict PNG gray", "predict PNG RGBA"):
            ours, ref = find_result(results, name, conns), reference.get((name, conns))
            if not (ours and ref and ref.requests_per_s):
                continue
            label = name.replace("predict ", "")
            verdict(
                f"{label} ours / reference req/s, {conns} connections",
                ours.requests_per_s / ref.requests_per_s,
                0.8,
                errors=ours.non_2xx,
            )
            if name == "predict 784 floats" and conns == 64 and ref.p99_ms:
                verdict(
                    f"{label} p99 ours / reference, 64 connections",
                    ours.p99_ms / ref.p99_ms,
                    1.5,
                    at_least=False,
                    errors=ours.non_2xx,
                )
        if batch:
            ratio = batch.images_per_s / ceiling[256]
            verdict(f"batch-256 images/s / in-process ONNX, {conns} connections", ratio, 0.6, errors=batch.non_2xx)
        v2_batch, v2_single = find_result(results, V2_BATCH, conns), find_result(results, V2_SINGLE, conns)
        if v2_batch:
            ratio = v2_batch.images_per_s / ceiling[256]
            verdict(
                f"v2 binary batch-256 images/s / in-process ONNX, {conns} conns", ratio, 0.8, errors=v2_batch.non_2xx
            )
        if v2_single and floats:
            ratio = v2_single.requests_per_s / floats.requests_per_s
            verdict(f"v2 JSON infer / predict floats req/s, {conns} connections", ratio, 0.9, errors=v2_single.non_2xx)


if __name__ == "__main__":
    main()
