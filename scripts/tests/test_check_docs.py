"""scripts/check-docs.py: the repository's docs pass, and each kind of broken reference fails,
named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_script


def test_the_repositorys_docs_have_no_broken_link_or_command():
    result = run_script("check-docs.py")
    assert result.returncode == 0, result.stdout
    assert ", 0 problems" in result.stdout


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "deploy.sh").write_text("#!/bin/sh\n")
    (tmp_path / "Makefile").write_text("test: install\n\techo\ninstall:\n\techo\n")
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Deploy it\n\nText.\n")
    return tmp_path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[gone](docs/missing.md)", "link to docs/missing.md: docs/missing.md does not exist"),
        ("[anchor](docs/guide.md#deploy)", "link to docs/guide.md#deploy: docs/guide.md has no heading #deploy"),
        ("[here](#nowhere)", "link to #nowhere: README.md has no heading #nowhere"),
        ("Run `make deploy` first.", "names `make deploy`, which the Makefile does not have"),
        ("Then scripts/promote.sh does it.", "names scripts/promote.sh, which does not exist"),
    ],
)
def test_a_broken_reference_fails_naming_it(tiny_repo, text, problem):
    (tiny_repo / "README.md").write_text(f"# Tiny\n\n{text}\n")
    result = run_script("check-docs.py", "--root", str(tiny_repo), str(tiny_repo / "README.md"))
    assert result.returncode == 1
    assert f"README.md: {problem}" in result.stdout


def test_what_resolves_passes_and_code_blocks_are_examples(tiny_repo):
    (tiny_repo / "README.md").write_text(
        "# Tiny\n\n[guide](docs/guide.md#deploy-it), [web](https://example.org/x), `make test`, "
        "scripts/deploy.sh\n\n```\n[example](not/a/file.md)\n```\n"
    )
    result = run_script("check-docs.py", "--root", str(tiny_repo), str(tiny_repo / "README.md"))
    assert result.returncode == 0, result.stdout


def test_it_reads_the_repository_not_only_the_front_page():
    assert len(list((REPO_ROOT / "docs").glob("*.md"))) >= 10
