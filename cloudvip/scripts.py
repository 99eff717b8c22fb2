"""Running operator scripts (vrrp_script checks, notify scripts) the way keepalived does:
no shell, argv split from the config, as `script_user`, with a timeout that kills the
whole process group, and with keepalived's `enable_script_security` path checks.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import shutil
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cloudvip.scripts")


class ScriptError(Exception):
    """The script cannot be run at all (missing, not executable, insecure, unknown user)."""


@dataclass(frozen=True, slots=True)
class ScriptResult:
    returncode: int | None  # None: it did not finish (timed out and killed)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def resolve(argv0: str) -> Path:
    """keepalived searches PATH for a bare name; a path is used as it is."""
    if "/" in argv0:
        return Path(argv0)
    found = shutil.which(argv0)
    if found is None:
        raise ScriptError(f"{argv0}: not found in PATH")
    return Path(found)


def insecure_component(path: Path) -> Path | None:
    """The first component of the script's path (itself or a directory leading to it) that a
    non-root user can write: keepalived's enable_script_security rule (so /tmp fails)."""
    try:
        real = path.resolve(strict=True)
    except OSError:
        return None  # a missing file fails elsewhere with a clearer message
    for part in [real, *real.parents]:
        st = part.stat()
        if ((st.st_uid != 0 and st.st_mode & stat.S_IWUSR) or (st.st_gid != 0 and st.st_mode & stat.S_IWGRP)
                or st.st_mode & stat.S_IWOTH):
            return part
    return None


@dataclass(frozen=True, slots=True)
class RunAs:
    user: str | None = None
    group: str | None = None

    def ids(self) -> tuple[int | None, int | None]:
        if self.user is None:
            return None, None
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            raise ScriptError(f"script user {self.user!r} does not exist") from None
        gid = pw.pw_gid
        if self.group is not None:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ScriptError(f"script group {self.group!r} does not exist") from None
        return pw.pw_uid, gid


class ScriptRunner:
    def __init__(self, run_as: RunAs = RunAs(), secure: bool = False) -> None:
        self.run_as, self.secure = run_as, secure

    def check(self, argv: tuple[str, ...]) -> Path:
        """Raise ScriptError when the script cannot or must not be run."""
        path = resolve(argv[0])
        if not path.exists():
            raise ScriptError(f"{path}: no such file")
        if not os.access(path, os.X_OK):
            raise ScriptError(f"{path}: not executable")
        if self.secure:
            bad = insecure_component(path)
            if bad is not None:
                raise ScriptError(f"{path}: refused by enable_script_security: {bad} is writable "
                                  "by a non-root user")
        return path

    async def run(self, argv: tuple[str, ...], timeout: float | None, run_as: RunAs | None = None) -> ScriptResult:
        """Run once; ScriptError if it cannot be started. Never blocks the event loop."""
        path = self.check(argv)
        uid, gid = (run_as or self.run_as).ids()
        kwargs: dict[str, object] = {}
        if uid is not None and uid != os.geteuid():
            kwargs.update(user=uid, group=gid, extra_groups=[])
        try:
            proc = await asyncio.create_subprocess_exec(
                str(path), *argv[1:], stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, start_new_session=True, **kwargs)  # type: ignore[arg-type]
        except OSError as exc:
            raise ScriptError(f"{path}: {exc.strerror}") from None
        try:
            return ScriptResult(await asyncio.wait_for(proc.wait(), timeout))
        except (TimeoutError, asyncio.CancelledError) as exc:
            _kill_group(proc.pid)
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return ScriptResult(None, timed_out=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the script and whatever it started
    except ProcessLookupError:
        pass
