"""The README's example runs as written (in a subprocess, as a reader would paste it), and
its commands, like the docs', work from a clone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_example_runs() -> None:
    example = python_blocks()[0]
    assert "trio.run(exegraph.run, graph)" in example
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_readme_shows_the_two_set_up_commands_first() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")


def _shell_lines(path: Path) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    return [line for block in blocks for line in block.splitlines()]


def test_every_install_command_works_from_a_clone() -> None:
    # exegraph-trio is not on PyPI yet: `pip install "exegraph-trio[otlp]"` fails outside
    # a clone. Commands install the clone (`pip install -e ".[otlp]"`); the published
    # form may be mentioned in prose, as what will work once it is published.
    pages = [README, *(p for p in (ROOT / "docs").rglob("*.md") if "generated" not in p.parts)]
    commands = {
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in pages
        for line in _shell_lines(path)
        if "pip install" in line
    }
    assert any("pip install -e" in command for command in commands)
    assert not [c for c in commands if "exegraph-trio" in c or "exegraph_trio" in c], commands
