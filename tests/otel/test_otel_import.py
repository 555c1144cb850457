"""Importing `exegraph_otel` without the OpenTelemetry API says what to install.

Charter: the import runs in a fresh interpreter (`-W error`, bounded timeout) whose
`sys.meta_path` starts with a finder that refuses every `opentelemetry` module, exactly as
if the `otel` extra were not installed; nothing else is changed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

WITHOUT_OPENTELEMETRY = textwrap.dedent(
    """
    import sys

    class NoOpenTelemetry:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())
    try:
        import exegraph_otel
    except ImportError as error:
        cause = error.__cause__
        print(type(error).__name__, error.name, type(cause).__name__, cause)
        print(error)
    """
)


@pytest.fixture(scope="module")
def printed() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", WITHOUT_OPENTELEMETRY],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_the_import_error_says_how_to_install_the_extra(printed: list[str]) -> None:
    assert printed[1] == (
        "exegraph_otel needs the OpenTelemetry API (the package opentelemetry-api), which is "
        "not installed (No module named 'opentelemetry'). Install exegraph with its otel "
        'extra: pip install "exegraph-trio[otel]" (or, in a clone of the repository: '
        'pip install -e ".[otel]").'
    )


def test_the_import_error_is_a_module_not_found_error_chained_from_the_original(
    printed: list[str],
) -> None:
    assert printed[0] == (
        "ModuleNotFoundError opentelemetry ModuleNotFoundError No module named 'opentelemetry'"
    )
