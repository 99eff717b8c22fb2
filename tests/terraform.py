"""Reading the Terraform examples in tests: python-hcl2, a renderer for the template syntax the
examples use, and checkov (offline) when it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UNIT_FILE = ROOT / "systemd" / "cloudvip.service"


def unq(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted: '"vpc"' -> 'vpc'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(module: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every `kind` block (resource, data, ...) of the module as {"type.name": body}."""
    import hcl2

    out: dict[str, dict[str, Any]] = {}
    for path in sorted(module.glob("*.tf")):
        with open(path) as fh:
            doc = hcl2.load(fh)
        for entry in doc.get(kind, []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    out[f"{unq(rtype)}.{unq(name)}"] = body
    return out


def render(template: str, **values: object) -> str:
    """The subset of Terraform's template syntax the examples use: ${name}, ${jsonencode(name)}
    and %{ if name != "" ~} ... %{ endif ~}."""
    def conditional(m: re.Match[str]) -> str:
        return m.group(2) if values[m.group(1)] != "" else ""

    def value(m: re.Match[str]) -> str:
        return json.dumps(values[m.group(1)]) if m.group(1) else str(values[m.group(2)])

    text = re.sub(r'%\{ if (\w+) != "" ~\}\n(.*?)%\{ endif ~\}\n', conditional, template, flags=re.S)
    # one pass, as Terraform: what a value brings in (a unit's ${VAR}) is not interpolated again
    return re.sub(r"\$\{(?:jsonencode\((\w+)\)|(\w+))\}", value, text)


def checkov() -> str | None:
    local = ROOT / ".venv-checkov" / "bin" / "checkov"
    return str(local) if local.exists() else shutil.which("checkov")


def checkov_failures(module: Path, home: Path) -> tuple[int, list[tuple[str, str]], str]:
    """(passed, [(check, resource) failed], stderr) of an offline checkov run over `module`."""
    tool = checkov()
    assert tool is not None
    done = subprocess.run([tool, "-d", str(module), "--framework", "terraform", "--skip-download", "--quiet",
                           "-o", "json"], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home), "BC_SKIP_MAPPING": "TRUE"})
    report = json.loads(done.stdout)
    if isinstance(report, list):  # one report per framework
        report = report[0]
    failed = [(c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])]
    summary = report.get("summary", report)  # no checks matched: the summary alone
    return int(summary["passed"]), failed, done.stderr[-2000:]


SHARED = ROOT / "examples" / "terraform" / "shared"


def install_package(pip_package: str = "cloudvip", deb_url: str = "", deb_sha256: str = "") -> str:
    """The package step every example's start-up script runs (module shared/package)."""
    return render((SHARED / "package" / "install-package.sh.tftpl").read_text(), cloudvip_deb_url=deb_url,
                  cloudvip_deb_sha256=deb_sha256, cloudvip_package=pip_package, systemd_unit=UNIT_FILE.read_text())


def startup_script(keepalived_conf: str = "", **package: str) -> str:
    """The AWS, GCP and Azure examples' start-up script as Terraform renders it."""
    return render((SHARED / "install-cloudvip.sh.tftpl").read_text(), keepalived_conf=keepalived_conf,
                  install_package=install_package(**package))
