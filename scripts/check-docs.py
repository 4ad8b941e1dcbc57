#!/usr/bin/env python3
"""Check the Markdown docs: every relative link and #anchor resolves, and every `make TARGET`
and `scripts/NAME` a doc names exists. Prints one line per problem; exit 1 when there is any.

Usage: scripts/check-docs.py [--root DIR] [FILE.md ...]   (default: every tracked *.md)
"""

from __future__ import annotations

import argparse
import re
import subprocess  # nosec B404 - git, with a fixed argument list
import sys
import unicodedata
from pathlib import Path

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
MAKE_TARGET = re.compile(r"`make ([a-z][a-z0-9-]*)")
SCRIPT = re.compile(r"(?<![\w/.-])scripts/([\w./-]+\.(?:sh|py))")
MAKE_RULE = re.compile(r"^([a-zA-Z][\w-]*)\s*:(?!=)", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\w)|(?<=\w)_|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = "".join(c for c in unicodedata.normalize("NFKC", text.lower()) if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            counts[base] = counts.get(base, -1) + 1
            found.add(base if counts[base] == 0 else f"{base}-{counts[base]}")
    return found


def prose(path: Path) -> str:
    """The text outside fenced code blocks (links there are examples, not links)."""
    out, in_code = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            out.append(line)
    return "\n".join(out)


def check_file(path: Path, root: Path, targets: set[str]) -> list[str]:
    problems = []
    text = prose(path)
    where = path.relative_to(root)
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{where}: link to {target}: {file_part} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: link to {target}: {linked.relative_to(root)} has no heading #{anchor}")
    for name in sorted(set(MAKE_TARGET.findall(path.read_text()))):
        if name not in targets:
            problems.append(f"{where}: names `make {name}`, which the Makefile does not have")
    for name in sorted(set(SCRIPT.findall(path.read_text()))):
        if not (root / "scripts" / name).exists():
            problems.append(f"{where}: names scripts/{name}, which does not exist")
    return problems


def tracked_markdown(root: Path) -> list[Path]:
    listed = subprocess.run(  # nosec B603 B607 - git from PATH, fixed arguments, no shell
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [root / name for name in listed if (root / name).exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    targets = set(MAKE_RULE.findall((root / "Makefile").read_text()))
    files = [f.resolve() for f in args.files] or tracked_markdown(root)
    problems = [problem for path in files for problem in check_file(path, root, targets)]
    for problem in problems:
        print(problem)
    print(f"docs: {len(files)} files, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
