#!/usr/bin/env python3
"""Upload a file to the drawing page in a real Chromium and wait for the page's answer.

    upload-to-page.py --url https://localhost:8443/ --file digit.png --expect "The model reads"

Prints what the page showed; exits 1 when the expected text does not appear within --timeout
(the page's own error sentences count as an answer only when they are what --expect names).
Needs what `make install` puts in .venv (Playwright, the dev test kit) and Debian's chromium;
never downloads a browser.
Loopback only, like the load test.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the page, e.g. https://localhost:8443/")
    parser.add_argument("--file", required=True, type=Path, help="the PNG/JPEG to upload")
    parser.add_argument("--expect", required=True, help="text the page must show afterwards")
    parser.add_argument("--timeout", type=float, default=60, help="seconds (default 60)")
    args = parser.parse_args()
    host = urlsplit(args.url).hostname or ""
    if not all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)):
        return fail(f"{host} is not this machine; upload-to-page.py only talks to loopback")
    if not args.file.is_file():
        return fail(f"{args.file} does not exist")
    try:
        from playwright.sync_api import Error, sync_playwright

        from mnist_testkit.browser import CHROMIUM, CHROMIUM_ARGS
    except ImportError:
        return fail("run it with .venv/bin/python after `make install` (Playwright and the test kit)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(ignore_https_errors=True)  # the self-signed edge of a test stack
            page.goto(args.url, wait_until="networkidle", timeout=args.timeout * 1000)
            page.locator("input[type=file]").set_input_files(str(args.file))
            page.get_by_text(args.expect).first.wait_for(timeout=args.timeout * 1000)
        except Error as error:
            return fail(f"the page did not show {args.expect!r}: {str(error).splitlines()[0]}")
        finally:
            browser.close()
    print(f"upload of {args.file.name} ({args.file.stat().st_size} bytes): the page showed {args.expect!r}")
    return 0


def fail(message: str) -> int:
    print(f"upload-to-page: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
