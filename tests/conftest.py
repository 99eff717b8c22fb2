"""Figures the tests measure (settle times, API writes, flood rates) are recorded with
`record_property("figure", line)` and printed together at the end of the run, so the CI log
shows them without -s."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
               if getattr(r, "when", "") == "call"]
    lines = [str(value) for r in reports for name, value in r.user_properties if name == "figure"]
    if lines:
        terminalreporter.section("measured figures")
        for line in lines:
            terminalreporter.write_line(line)
