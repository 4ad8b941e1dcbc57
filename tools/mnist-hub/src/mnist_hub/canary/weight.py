"""The canary's share of ordinary API traffic: nginx's ``split_clients`` in the pool folder's
canary-weight.conf (nginx/pool/ holds the copy that sends none), changed by a reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mnist_hub.errors import DeployError
from mnist_hub.record import write_atomically

WEIGHT_FILE = "canary-weight.conf"


def render(template: str, percent: float) -> str:
    """The committed file's text with its ``split_clients`` entries for ``percent`` (0-100)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"a canary weight is a percentage from 0 to 100, not {percent:g}")
    head, brace, rest = template.partition("$canary_split {")
    if not brace or "}" not in rest:
        raise ValueError("the canary weight template has no `split_clients ... $canary_split { ... }` block")
    # nginx refuses "0%" (a 0 share is no entry at all) and takes at most two decimals.
    if percent == 0:
        entries = "    * stable;\n"
    elif percent == 100:
        entries = "    100% canary;\n"
    else:
        entries = f"    {round(percent, 2):g}% canary;\n    * stable;\n"
    return f"{head}{brace}\n{entries}}}{rest.partition('}')[2]}"


def read(path: Path) -> float:
    """The weight a canary-weight.conf sends to the canary (0 when the file is missing)."""
    try:
        text = path.read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        share, _, side = line.strip().partition(" ")
        if side.strip() == "canary;" and share.endswith("%"):
            return float(share[:-1])
    return 0.0


class EdgeWeight:
    """Sets the share in the environment's pool folder and reloads nginx; a configuration nginx
    refuses is put back as it was."""

    def __init__(self, pool_dir: Path, template: Path, reload: Callable[[], bool]) -> None:
        self.path, self.template, self.reload = pool_dir / WEIGHT_FILE, template, reload

    def set(self, percent: float) -> None:
        try:
            before: str | None = self.path.read_text()
        except OSError:
            before = None
        write_atomically(self.path, render(self.template.read_text(), percent))
        if self.reload():
            return
        if before is not None:
            write_atomically(self.path, before)
            self.reload()
        raise DeployError(f"nginx did not take the canary share {percent:g} % (configuration test or reload failed)")
