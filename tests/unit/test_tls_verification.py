"""TLS verification is never turned off: not in the agent, the providers, the lab, the benches
or the scripts they write (the lab's CA is trusted through the SDKs' own CA-bundle settings)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: how Python, boto3/botocore, requests, urllib3 and curl are told not to verify
SKIPPING = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context|"
                      r"disable_warnings|curl[^\n]*\s(-k|--insecure)\b|--no-verify-ssl")


def test_no_code_skips_certificate_verification() -> None:
    files = [p for d in ("cloudvip", "providers", "lab", "bench", "examples", "systemd")
             for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in (".py", ".sh", ".tf", ".tftpl", ".yaml", "")
             and "build" not in p.parts]
    assert len(files) > 50
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files
             for m in SKIPPING.finditer(p.read_text(errors="replace"))]
    assert found == []
