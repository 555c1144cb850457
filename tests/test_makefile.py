"""The Makefile says what it is doing while it sets up, and builds a self-contained site.

Testing charter: `make -n` prints the commands a target would run without running them
(`-W pyproject.toml` pretends the environment is stale, as on a fresh machine), so these
tests install nothing and touch no network. Skipped, saying why, where `make` is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="`make` is not installed")


def _dry_run(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def test_a_fresh_set_up_says_what_it_does_before_each_step() -> None:
    commands = _dry_run("-W", "pyproject.toml", "demo")
    steps = [i for i, line in enumerate(commands) if " -m venv " in line or "pip install" in line]
    assert len(steps) == 3  # the venv, pip itself, exegraph and its dev tools
    for i in steps:
        assert commands[i - 1].startswith("echo "), f"nothing said before: {commands[i]}"
    assert commands[-1].endswith("examples/demo_pipeline.py")


def test_the_long_install_shows_pip_progress() -> None:
    commands = _dry_run("-W", "pyproject.toml", "demo")
    install = next(line for line in commands if "--group dev" in line)
    assert "--quiet" not in install
    assert "-q" not in install.split()


@pytest.mark.parametrize("target", ["docs", "serve-docs"])
def test_the_docs_fetch_their_copy_of_mermaid_before_building(target: str) -> None:
    commands = _dry_run(target)
    fetch = next(i for i, line in enumerate(commands) if "docs/_vendor_mermaid.py" in line)
    build = next(i for i, line in enumerate(commands) if "mkdocs " in line)
    assert fetch < build
