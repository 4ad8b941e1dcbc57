#!/usr/bin/env python3
"""Triton's own client (``tritonclient[http]``) calls a deployed hub through its HTTPS edge:
server and model metadata, then the ten held-out digits as one binary-tensor batch, with the
API key and without it. Prints one line per finding; exits 1 on the first that is wrong.

    python scripts/oip_client_check.py --url https://localhost:8443 --cacert tls.crt --key-file api-keys
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

DIGITS = Path(__file__).resolve().parent.parent / "frontend" / "src" / "mnist_frontend" / "example_digits.json"
MODEL = "mnist-cnn"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="the edge, https://host:port")
    parser.add_argument("--cacert", type=Path, required=True, help="the edge's certificate (or its CA)")
    parser.add_argument("--key-file", type=Path, required=True, help="a file whose first line is an API key")
    args = parser.parse_args()
    key = args.key_file.read_text().splitlines()[0].strip().split(",")[0]
    client = triton.InferenceServerClient(
        args.url.removeprefix("https://"),
        ssl=True,
        # Not ssl_context_factory: the client calls it with its own cafile (certifi's), over ours.
        ssl_options={"ca_certs": str(args.cacert)},
        connection_timeout=10,
        network_timeout=30,
    )
    headers = {"X-API-Key": key}
    if not (client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)):
        return fail("the edge's /v2 health does not say live, ready and model ready")
    version = client.get_model_metadata(MODEL, headers=headers)["versions"][0]
    images = json.loads(DIGITS.read_text())["images"]
    labels = np.arange(10)
    batch = np.stack([np.asarray(images[str(d)], dtype=np.float32) / 255 for d in labels]).reshape(10, 1, 28, 28)
    tensor = triton.InferInput("image", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=True)
    outputs = [triton.InferRequestedOutput("digit", binary_data=True)]
    result = client.infer(MODEL, [tensor], outputs=outputs, headers=headers)
    read = result.as_numpy("digit")
    if not np.array_equal(read, labels):
        return fail(f"the ten held-out digits were read as {read.tolist()}")
    print(f"tritonclient through {args.url}: 0-9 read right by {version} (binary tensors, API key)")
    try:
        client.infer(MODEL, [tensor], outputs=outputs)
    except InferenceServerException as error:
        if "API key" not in str(error):
            return fail(f"without a key: {error}")
        print(f"tritonclient without a key: refused ({error.message()})")
        return 0
    return fail("without a key the inference was answered")


def fail(message: str) -> int:
    print(f"FAILED: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
