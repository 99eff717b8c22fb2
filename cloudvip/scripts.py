"""Running operator scripts (vrrp_script checks, notify scripts) the way keepalived does:
no shell, argv split from the config, as `script_user`, with a timeout that kills the
whole process group, and with keepalived's `enable_script_security` path checks.

Never with more than keepalived gives them: the same user (keepalived's default
`keepalived_script`, never root by fallback under script security), a minimal environment
(no cloud credentials the agent holds), and exactly the file that was checked: it is
opened once, checked through that descriptor and executed from it, so a symlink or a
file swapped between the check and the exec changes nothing.
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


#: keepalived's default script user, used when it exists and no script_user is set
DEFAULT_SCRIPT_USER = "keepalived_script"
#: what a script sees of the agent's environment: locale, time zone and PATH, nothing else
#: (the agent's may hold HCLOUD_TOKEN, AWS_* credentials, NOTIFY_SOCKET, LD_PRELOAD ...)
PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "TZ")
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def script_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH_ENV)
    return env


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RunAs:
    user: str | None = None  # None: as the agent itself
    group: str | None = None
    refused: str | None = None  # why no script may run at all (keepalived disables them too)

    def ids(self) -> tuple[int | None, int | None]:
        if self.refused is not None:
            raise ScriptError(self.refused)
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


def default_run_as(script_user: str | None, script_group: str | None, secure: bool) -> RunAs:
    """Whom keepalived runs scripts as when a script names no user: `script_user`; else
    keepalived_script if that user exists; else itself (root), but under
    enable_script_security no script at all (keepalived: "Unable to set default user")."""
    if script_user is not None:
        return RunAs(script_user, script_group)
    if user_exists(DEFAULT_SCRIPT_USER):
        return RunAs(DEFAULT_SCRIPT_USER)
    if secure:
        return RunAs(refused=f"enable_script_security is on, no script_user is set and the default script user "
                             f"{DEFAULT_SCRIPT_USER!r} does not exist: scripts are not run (never as root by "
                             f"fallback); set script_user in global_defs or create {DEFAULT_SCRIPT_USER}")
    return RunAs()


class ScriptRunner:
    def __init__(self, run_as: RunAs = RunAs(), secure: bool = False) -> None:
        self.run_as, self.secure = run_as, secure

    def check(self, argv: tuple[str, ...]) -> Path:
        """Raise ScriptError when the script cannot or must not be run."""
        os.close(self._open_checked(argv)[1])
        return resolve(argv[0])

    def _open_checked(self, argv: tuple[str, ...]) -> tuple[Path, int]:
        """The script's real path and a descriptor of exactly the file that passed the checks."""
        path = resolve(argv[0])
        try:
            real = path.resolve(strict=True)
            fd = os.open(real, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ScriptError(f"{path}: no such file") from None
        except OSError as exc:
            raise ScriptError(f"{path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ScriptError(f"{path}: not a regular file")
            if not os.access(f"/proc/self/fd/{fd}", os.X_OK):
                raise ScriptError(f"{path}: not executable")
            if self.secure:
                bad = insecure_component(real)
                if bad is not None:
                    raise ScriptError(f"{path}: refused by enable_script_security: {bad} is writable "
                                      "by a non-root user")
                now = os.stat(real)
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    raise ScriptError(f"{path}: replaced while it was being checked")
        except BaseException:
            os.close(fd)
            raise
        return path, fd

    async def spawn(self, argv: tuple[str, ...], run_as: RunAs | None = None,
                    output: int | None = asyncio.subprocess.DEVNULL) -> asyncio.subprocess.Process:
        """Start the script as keepalived would (its user, a clean environment, its own process
        group, the checked file itself); ScriptError if it cannot or must not be started."""
        uid, gid = (run_as or self.run_as).ids()
        path, fd = self._open_checked(argv)
        kwargs: dict[str, object] = {}
        if uid is not None and uid != os.geteuid():
            kwargs.update(user=uid, group=gid, extra_groups=[])
        try:
            return await asyncio.create_subprocess_exec(
                str(path), *argv[1:], executable=f"/proc/self/fd/{fd}", pass_fds=(fd,),
                env=script_environment(), stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output,
                start_new_session=True, **kwargs)  # type: ignore[arg-type]
        except OSError as exc:
            raise ScriptError(f"{path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    async def run(self, argv: tuple[str, ...], timeout: float | None, run_as: RunAs | None = None) -> ScriptResult:
        """Run once; ScriptError if it cannot be started. Never blocks the event loop."""
        proc = await self.spawn(argv, run_as)
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
