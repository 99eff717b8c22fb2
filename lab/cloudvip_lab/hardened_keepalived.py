"""A stock keepalived as distributions harden it, with a cloudvip companion next to it: for the
companion lab, its tests and the bench.

keepalived runs with `enable_script_security` and the non-root `keepalived_script` user, so
`cloudvip notify` runs as that user, from a root-owned directory (script security refuses a
script any other user could replace). keepalived.conf has nothing cloudvip-only in it (it
passes `keepalived -t`); the cloud block lives in the companion file beside it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloudvip.scripts import DEFAULT_SCRIPT_USER, user_exists
from .daemons import instance_block
from .topology import Node

#: a Python that any user may run, for `cloudvip notify` as the script user: the running one
#: may live under a home directory only root can enter (pyenv in /root)
SYSTEM_PYTHON = "/usr/bin/python3"


class ScriptUser:
    """keepalived's default script user, created for the lab if the machine has none (and
    removed again afterwards)."""

    def __init__(self, name: str = DEFAULT_SCRIPT_USER) -> None:
        self.name, self.created = name, False

    def __enter__(self) -> ScriptUser:
        if not user_exists(self.name):
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", self.name], check=True)
            self.created = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.created:
            subprocess.run(["userdel", self.name], check=False)


class SecureDir:
    """A root-owned directory under /run that only root can write: where script security lets
    keepalived run scripts from, and the script user can read and enter."""

    def __init__(self, prefix: str = "cloudvip-lab-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir="/run"))
        os.chmod(self.path, 0o755)

    def writable_by(self, user: str, name: str = "out") -> Path:
        """A subdirectory the script user may write into (for what the scripts report)."""
        sub = self.path / name
        sub.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(sub, user)
        return sub

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _runnable_by_anyone(path: str) -> bool:
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & stat.S_IXOTH for p in (real, *real.parents))


def notify_wrapper(directory: Path) -> Path:
    """`cloudvip notify` as a script keepalived's script user can run: this Python if anyone may
    run it, else the system's with this cloudvip on its path (the client needs no dependency)."""
    import cloudvip

    source = Path(cloudvip.__file__).resolve().parent.parent
    if _runnable_by_anyone(sys.executable):
        line = f'exec {sys.executable} -m cloudvip notify "$@"'
    else:
        line = f'PYTHONPATH={source} exec {SYSTEM_PYTHON} -m cloudvip notify "$@"'
    wrapper = directory / "cloudvip-notify"
    wrapper.write_text(f"#!/bin/sh\n{line}\n")
    wrapper.chmod(0o755)
    return wrapper


@dataclass(frozen=True, slots=True)
class PairFiles:
    keepalived_conf: Path
    companion_conf: Path


def write_pair_files(directory: Path, node: Node, peers: list[Node], *, priority: int, cloud_block: str,
                     notify: Path, vip: str | None = None, fifo: Path | None = None, version: int = 3,
                     advert: float = 0.1, script_user: str = DEFAULT_SCRIPT_USER) -> PairFiles:
    """A hardened keepalived.conf that calls `cloudvip notify` (and on a master hearing a lower
    priority, `cloudvip notify master_rx_lower_pri`), and the companion file with the cloud block."""
    directory.mkdir(parents=True, exist_ok=True)
    kconf, cconf = directory / "keepalived.conf", directory / "companion.conf"
    notify_line = (f'    notify "{notify} -f {cconf}"\n'
                   f'    notify_master_rx_lower_pri "{notify} -f {cconf} master_rx_lower_pri VI_1"\n')
    fifo_line = f"    notify_fifo {fifo}\n" if fifo is not None else ""
    kconf.write_text(f"global_defs {{\n    router_id {node.name}\n    enable_script_security\n"
                     f"    script_user {script_user}\n{fifo_line}}}\n\n"
                     + instance_block(node, peers, priority=priority, version=version, advert=advert, vip=vip,
                                      extra=notify_line))
    cconf.write_text(f"# cloudvip's side of this node's keepalived: keepalived never reads this file\n"
                     f"keepalived_config {kconf}\n\nvrrp_instance VI_1 {{\n{cloud_block}}}\n")
    return PairFiles(kconf, cconf)
