"""Which keepalived binaries the tests can run: Debian's 2.2.7 (`keepalived` in PATH) and 2.4.3,
built by `make test` from ../shared/keepalived/ into a cache outside the work tree."""

from __future__ import annotations

import os
import shutil

import pytest

KEEPALIVED22 = shutil.which("keepalived")
KEEPALIVED24 = os.environ.get("CLOUDVIP_KEEPALIVED24",
                              "/var/cache/cloudvip/keepalived-2.4.3-full/keepalived/keepalived")

needs_keepalived24 = pytest.mark.skipif(
    not os.access(KEEPALIVED24, os.X_OK),
    reason=f"keepalived 2.4.3 not built at {KEEPALIVED24} (`make test` builds it from ../shared/keepalived/ "
           "when that is present)")
