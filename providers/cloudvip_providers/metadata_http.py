"""HTTP to an instance metadata service (EC2 IMDS, Hetzner's metadata): always direct.

The metadata service is link-local; asked through an `http_proxy`/`https_proxy` from the
agent's environment, the proxy would answer with its own host's identity (or leak the token
request). urllib's default opener honours those variables: this one has no proxy at all.
"""

from __future__ import annotations

import urllib.request
from typing import IO

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def open_direct(request: urllib.request.Request | str, timeout: float) -> IO[bytes]:
    response: IO[bytes] = _DIRECT.open(request, timeout=timeout)
    return response
