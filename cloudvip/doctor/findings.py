"""What `cloudvip doctor` found: one finding per check, a table a person reads in seconds, JSON
for automation, and the exit code (1 when anything failed)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Iterable


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look (or could not be checked without a change)
    FAIL = "fail"  # will break a failover: comes with the fix

    @property
    def mark(self) -> str:
        return {"ok": "✔", "warn": "!", "fail": "✘"}[self.value]


@dataclass(frozen=True, slots=True)
class Finding:
    scope: str  # the vrrp_instance, or "host"
    check: str  # short: "interface", "firewall in", "iam ec2:AssociateAddress"
    status: Status
    found: str
    fix: str = ""  # for WARN/FAIL: the command, rule or setting that fixes it


def ok(scope: str, check: str, found: str) -> Finding:
    return Finding(scope, check, Status.OK, found)


def warn(scope: str, check: str, found: str, fix: str = "") -> Finding:
    return Finding(scope, check, Status.WARN, found, fix)


def fail(scope: str, check: str, found: str, fix: str) -> Finding:
    return Finding(scope, check, Status.FAIL, found, fix)


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.status is Status.FAIL for f in findings) else 0


def render(findings: list[Finding], width: int = 100) -> str:
    """One line per check: mark, scope, check, what was found; the fix under a ✘ or !."""
    scope_w = max((len(f.scope) for f in findings), default=4)
    check_w = max((len(f.check) for f in findings), default=5)
    lines = []
    for f in findings:
        head = f"{f.status.mark} {f.scope:<{scope_w}}  {f.check:<{check_w}}  "
        body = textwrap.wrap(f.found, max(30, width - len(head)), break_on_hyphens=False,
                             break_long_words=False) or [""]
        lines.append(head + body[0])
        lines.extend(" " * len(head) + more for more in body[1:])
        if f.fix and f.status is not Status.OK:
            pad = " " * len(head)
            for i, fix_line in enumerate(f.fix.splitlines()):
                lines += textwrap.wrap(fix_line, width, initial_indent=pad + ("fix: " if i == 0 else "     "),
                                       subsequent_indent=pad + "     ", break_on_hyphens=False,
                                       break_long_words=False)
    counts = {s: sum(f.status is s for f in findings) for s in Status}
    lines.append(f"{counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), {counts[Status.FAIL]} failed")
    return "\n".join(lines)


def to_json(findings: list[Finding]) -> str:
    return json.dumps({"ok": exit_code(findings) == 0,
                       "findings": [asdict(f) | {"status": f.status.value} for f in findings]}, indent=2)
