"""EC2 instance metadata, IMDSv2 (token first, short timeouts); IMDSv1 only if configured.

Honours AWS_EC2_METADATA_SERVICE_ENDPOINT as botocore does, so tests point it at a local
fake; nothing here ever falls back to 169.254.169.254 when an endpoint is given, and nothing
goes through a proxy.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass

from .metadata_http import open_direct

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL = 21600


class ImdsError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, 0 when there was no answer


@dataclass(frozen=True, slots=True)
class Identity:
    instance_id: str
    region: str
    eni: str
    mac: str


class Imds:
    def __init__(self, endpoint: str | None = None, timeout: float = 1.0, v1_fallback: bool = False) -> None:
        self.endpoint = (endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                         or DEFAULT_ENDPOINT).rstrip("/")
        self.timeout, self.v1_fallback = timeout, v1_fallback
        self._token: str | None = None

    def _request(self, method: str, path: str, headers: dict[str, str]) -> str:
        return self._exchange(method, path, headers)[0]

    def _exchange(self, method: str, path: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        req = urllib.request.Request(f"{self.endpoint}/latest/{path}", method=method, headers=headers)
        try:
            with open_direct(req, self.timeout) as resp:
                return str(resp.read().decode()), dict(getattr(resp, "headers", {}).items())
        except urllib.error.HTTPError as exc:
            raise ImdsError(f"IMDS {method} {path}: HTTP {exc.code}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ImdsError(f"IMDS {method} {path}: {getattr(exc, 'reason', exc)}") from None

    def token(self) -> str | None:
        if self._token is None:
            try:
                self._token = self._request("PUT", "api/token",
                                            {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)})
            except ImdsError:
                if not self.v1_fallback:
                    raise
                return None  # IMDSv1: no token header
        return self._token

    def token_ttl(self) -> int | None:
        """A fresh IMDSv2 token's TTL as the service granted it (raises ImdsError when there is no
        token: IMDSv2 unreachable, e.g. one hop too far for the hop limit)."""
        token, headers = self._exchange("PUT", "api/token", {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)})
        self._token = token
        ttl = {k.lower(): v for k, v in headers.items()}.get("x-aws-ec2-metadata-token-ttl-seconds", "")
        return int(ttl) if ttl.isdigit() else None

    def get(self, path: str) -> str:
        token = self.token()
        headers = {"X-aws-ec2-metadata-token": token} if token else {}
        try:
            return self._request("GET", f"meta-data/{path}", headers).strip()
        except ImdsError as exc:
            if exc.status != 401 or token is None:
                raise
        self._token = None  # expired (a long-running agent outlives its TTL): one fresh token
        token = self.token()
        return self._request("GET", f"meta-data/{path}", {"X-aws-ec2-metadata-token": token} if token else {}).strip()

    def identity(self, mac: str | None = None) -> Identity:
        """Instance id, region and the ENI of `mac` (default: the instance's primary MAC)."""
        mac = (mac or self.get("mac")).lower()
        return Identity(instance_id=self.get("instance-id"), region=self.get("placement/region"),
                        eni=self.get(f"network/interfaces/macs/{mac}/interface-id"), mac=mac)
