"""The instructions one Python process executes, counted by valgrind's cachegrind.

The count is the same to ±0.1 % from one try to the next, whatever else the machine does
(it is blind to cache misses): `progress.py --instructions` and `pools.py --instructions`
run each variant in a child process of their own through `instructions_of`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence


def instructions_of(script: str, args: Sequence[str]) -> int:
    """Instructions of `python script *args` under cachegrind (`PYTHONHASHSEED=0`).

    Raises:
        subprocess.CalledProcessError: the child failed.
        RuntimeError: valgrind printed no instruction count.
    """
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        script,
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{done.stderr}")
    return int(found.group(1).replace(",", ""))
