#!/usr/bin/env python3
"""The long sweep of the fault matrix: every case with 2 and with 3 nodes, for every cloud
(CI, `make test`, runs each case once per cloud: tests/fault_harness.py). Prints each case's
settle time and API writes (the "measured figures" section of pytest's output).

    python bench/fault_matrix.py [--profile realistic] [aws|hetzner|gcp|azure ...]      # needs root

`--profile realistic` runs it in the cloud docs/lab.md describes (the API 30 ms away over
HTTPS, reads lagging writes, Hetzner actions of 2 s, a routed data plane following the cloud
seconds later) with the documented default intervals (advert 1 s; reconcile 10 s on AWS, GCP and
Azure, 30 s on Hetzner), and adds the client's longest outage to each case's figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["instant", "realistic"], default="instant")
    clouds = ["aws", "hetzner", "gcp", "azure"]
    ap.add_argument("clouds", nargs="*", choices=clouds, default=clouds)
    args = ap.parse_args()
    files = [str(ROOT / "tests" / cloud / "test_fault_matrix.py") for cloud in args.clouds]
    env = dict(os.environ, CLOUDVIP_FAULT_MATRIX="full", CLOUDVIP_FAULT_PROFILE=args.profile)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
