#!/usr/bin/env python3
"""The long sweep of the fault matrix: every case with 2 and with 3 nodes, for both clouds
(CI, `make test`, runs each case once per cloud: tests/fault_harness.py). Prints each case's
settle time and API writes (the "measured figures" section of pytest's output).

    python bench/fault_matrix.py [aws|hetzner ...]      # needs root
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    clouds = sys.argv[1:] or ["aws", "hetzner"]
    files = [str(ROOT / "tests" / cloud / "test_fault_matrix.py") for cloud in clouds]
    env = dict(os.environ, CLOUDVIP_FAULT_MATRIX="full")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
