"""``python -m mnist_frontend [streamlit options]``: ``streamlit run`` this package's page.

Importing ``app`` outside Streamlit's runtime would run the page, so the path is found beside
this file instead. Settings come from ``STREAMLIT_*`` variables and ``.streamlit/config.toml``
in the working directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    app = Path(__file__).with_name("app.py")
    # Replace this process, so signals (docker stop) reach Streamlit directly. S606/B606: this
    # interpreter and our own app file, no shell.
    command = [sys.executable, "-m", "streamlit", "run", str(app), *sys.argv[1:]]
    os.execv(command[0], command)  # noqa: S606  # nosec B606


if __name__ == "__main__":
    main()
