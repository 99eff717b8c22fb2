"""Reading a `cloud PROVIDER { ... }` block: one value per key, checked, with file:line errors
saying what was expected. Shared by the providers' settings parsers."""

from __future__ import annotations

import re
from typing import Callable, TypeVar

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, CloudEntry

T = TypeVar("T")
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
#: the bounds (s) of `operation_timeout`: the deadline of a whole operation (a check; a move with
#: its API calls, action waits and DNS lookups), past which the mover gives up on it and retries
OPERATION_TIMEOUT = (5.0, 600.0)


class BlockReader:
    """Collects the checked values of a cloud block into `fields`; errors go to `diags`."""

    def __init__(self, block: CloudBlock, diags: Diagnostics, modes: tuple[str, ...]) -> None:
        self.block, self.diags, self.modes = block, diags, modes
        self.where = f"cloud {block.provider}"
        self.fields: dict[str, object] = {}
        self._errors_before = len(diags.errors)

    def entries(self) -> list[CloudEntry]:
        """The block's key/value entries but `mode` (read here, and required); a nested block
        is an error."""
        out = []
        for e in self.block.entries:
            if e.children is not None:
                self.error(e, f"{e.key} takes no block", f"{e.key} VALUE")
            elif e.key == "mode":
                self.choice(e, self.modes)
            else:
                out.append(e)
        if self.block.get("mode") is None:
            self.error(None, "needs a mode", " or ".join(self.modes))
        return out

    @property
    def mode(self) -> str | None:
        mode = self.fields.get("mode")
        return mode if isinstance(mode, str) else None

    @property
    def failed(self) -> bool:
        return len(self.diags.errors) > self._errors_before

    def error(self, e: CloudEntry | None, message: str, expected: str) -> None:
        self.diags.error(e.loc if e else self.block.loc, f"{self.where}: {message}", expected)

    def one(self, e: CloudEntry, expected: str) -> str | None:
        if len(e.values) != 1:
            self.error(e, f"{e.key} takes one value", expected)
            return None
        return e.values[0]

    def convert(self, e: CloudEntry, expected: str, conv: Callable[[str], T | None]) -> None:
        """fields[key] = conv(value); conv returns None (or raises ValueError) when invalid."""
        raw = self.one(e, expected)
        if raw is None:
            return
        try:
            value = conv(raw)
        except ValueError:
            value = None
        if value is None:
            self.error(e, f"{e.key} {raw!r} is not valid", expected)
        else:
            self.fields[e.key] = value

    def choice(self, e: CloudEntry, choices: tuple[str, ...]) -> None:
        self.convert(e, " or ".join(choices), lambda v: v if v in choices else None)

    def matching(self, e: CloudEntry, pattern: str, expected: str) -> None:
        self.convert(e, expected, lambda v: v if re.fullmatch(pattern, v) else None)

    def seconds(self, e: CloudEntry, lo: float, hi: float) -> None:
        self.convert(e, f"seconds, {lo:g}..{hi:g}", lambda v: float(v) if lo <= float(v) <= hi else None)

    def url(self, e: CloudEntry) -> None:
        self.convert(e, "an http(s) URL, http(s)://host[:port][/path]", lambda v: v if URL.match(v) else None)

    def key_value(self, e: CloudEntry, example: str) -> None:
        def split(v: str) -> tuple[str, str] | None:
            key, sep, value = v.partition("=")
            return (key, value) if sep and key else None
        self.convert(e, f"KEY=VALUE, e.g. {example}", split)

    def flag(self, e: CloudEntry) -> None:
        self.fields[e.key] = True

    def unknown(self, e: CloudEntry) -> None:
        self.diags.warning(e.loc, f"{self.where}: unknown setting '{e.key}', ignored")

    def require(self, key: str, message: str, expected: str) -> None:
        if key not in self.fields:
            self.error(None, message, expected)
