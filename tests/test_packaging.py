"""The product wheel ships what runs in production: the core and the provider plugins. The lab
and test tooling (emulators, attacker, delayer, moto corrections) is the cloudvip-lab
distribution, and the product depends on none of its libraries."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wheel(source: Path, out: Path) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(out)],
                   check=True, capture_output=True, timeout=300)
    return zipfile.ZipFile(next(out.glob("*.whl")))


def test_the_product_wheel_holds_the_core_and_the_providers_only(tmp_path: Path) -> None:
    whl = wheel(ROOT, tmp_path / "product")
    top = {name.split("/")[0] for name in whl.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"cloudvip", "cloudvip_providers"}, top
    assert not [n for n in whl.namelist() if "emulator" in n or "attacker" in n or "/lab" in n]
    meta = Parser().parsestr(whl.read(next(n for n in whl.namelist() if n.endswith("dist-info/METADATA"))).decode())
    needs = " ".join(meta.get_all("Requires-Dist") or [])
    assert "moto" not in needs and "fnfqueue" not in needs and "cloudvip-lab" not in needs, needs
    entry_points = whl.read(next(n for n in whl.namelist() if n.endswith("dist-info/entry_points.txt"))).decode()
    assert "[cloudvip.providers]" in entry_points and "cloudvip_lab" not in entry_points


def test_the_lab_is_its_own_distribution(tmp_path: Path) -> None:
    whl = wheel(ROOT / "lab", tmp_path / "lab")
    top = {name.split("/")[0] for name in whl.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"cloudvip_lab"}, top
    assert "cloudvip_lab/lab.conf" in whl.namelist()  # `cloudvip lab` reads it from the package
