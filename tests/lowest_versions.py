"""The lowest versions the product declares (pyproject.toml: its dependencies and the cloud
extras), as pip pins: `make test` installs exactly these into .venv-lowest and runs the
unit and provider tests there, so a lower bound that does not work fails CI.

    python tests/lowest_versions.py [pyproject.toml]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EXTRAS = ("aws", "hetzner", "gcp", "azure")
LOWER = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+?)\s*>=\s*([0-9][^,;\s]*)")


def pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in EXTRAS:
        specs += project["optional-dependencies"][extra]
    out: dict[str, str] = {}
    for spec in specs:
        m = LOWER.match(spec)
        if m is None:
            raise SystemExit(f"{pyproject}: {spec!r} has no lower bound (NAME>=VERSION)")
        name = re.sub(r"\[.*\]", "", m.group(1)).lower()
        out[name] = f"{name}=={m.group(2)}"
    return sorted(out.values())


if __name__ == "__main__":
    print("\n".join(pins(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
