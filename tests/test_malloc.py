"""``gspauth file`` fixes glibc's mmap threshold for its own process (see ``gspauth._malloc``)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

CALL = "from gspauth._malloc import bound_large_allocations as b; print(b())"
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    return subprocess.run([sys.executable, "-c", CALL], env={**clean, **env}, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def test_the_threshold_is_fixed_on_glibc_and_nowhere_else() -> None:
    assert _run() == str(GLIBC)


def test_the_environment_setting_takes_precedence() -> None:
    assert _run(MALLOC_MMAP_THRESHOLD_="4194304") == "False"
