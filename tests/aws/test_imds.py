"""The IMDSv2 client against the fake metadata service: token flow, no silent IMDSv1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Iterator

import pytest

from cloudvip_providers.aws_imds import Imds, ImdsError

from cloudvip_lab.netns_services import imds_handler

IDENT = {"instance_id": "i-0123456789abcdef0", "mac": "02:aa:bb:cc:dd:ee", "region": "eu-central-1",
         "eni": "eni-0123456789abcdef0"}


@pytest.fixture
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), imds_handler(lambda: IDENT))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_identity_through_the_token_flow(imds: str) -> None:
    ident = Imds(imds).identity()
    assert (ident.instance_id, ident.region, ident.eni, ident.mac) == (
        IDENT["instance_id"], IDENT["region"], IDENT["eni"], IDENT["mac"])


def test_identity_of_a_given_mac(imds: str) -> None:
    assert Imds(imds).identity("02:AA:BB:CC:DD:EE").eni == IDENT["eni"]


def test_environment_variable_sets_the_endpoint(imds: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
    assert Imds().get("instance-id") == IDENT["instance_id"]


def test_an_expired_token_is_replaced() -> None:
    """A token lives 6 hours; the agent runs for months: a 401 gets one fresh token."""
    handler = imds_handler(lambda: IDENT)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        imds = Imds(f"http://127.0.0.1:{server.server_address[1]}")
        assert imds.get("instance-id") == IDENT["instance_id"]
        handler.tokens.clear()
        assert imds.get("instance-id") == IDENT["instance_id"]
    finally:
        server.shutdown()
        server.server_close()


def test_no_imdsv1_fallback_unless_configured() -> None:
    # nothing listens on port 9: the token call fails and, without the fallback, so does everything
    with pytest.raises(ImdsError, match="api/token"):
        Imds("http://127.0.0.1:9", timeout=0.3).get("instance-id")
    with pytest.raises(ImdsError, match="meta-data/instance-id"):
        Imds("http://127.0.0.1:9", timeout=0.3, v1_fallback=True).get("instance-id")


def test_the_metadata_service_is_never_asked_through_a_proxy(imds: str) -> None:
    """A proxy from the agent's environment would answer for its own host (or see the token).
    In a fresh process: urllib reads the proxy variables when it builds its opener."""
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(8)
    proxy.settimeout(0.1)
    try:
        url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
        env.update(http_proxy=url, HTTP_PROXY=url, https_proxy=url, HTTPS_PROXY=url)
        code = "import sys; from cloudvip_providers.aws_imds import Imds; print(Imds(sys.argv[1]).get('instance-id'))"
        done = subprocess.run([sys.executable, "-c", code, imds], env=env, capture_output=True, text=True, timeout=30)
        assert done.stdout.strip() == IDENT["instance_id"], done.stderr
        with pytest.raises(socket.timeout):
            proxy.accept()  # nobody came through the proxy
    finally:
        proxy.close()
