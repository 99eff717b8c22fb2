"""`cloudvip lab --cloud aws --companion`: the stock keepalived elects, cloudvip only moves the cloud.

Two nodes, each a hardened keepalived (enable_script_security, notify scripts as the non-root
keepalived_script) with a `cloudvip companion` beside it. keepalived.conf holds nothing
cloudvip-only (`keepalived -t` is run on it); the cloud block is in the companion file.
Shown from the cloud's side: the election, the master's death and the failover with its time,
the old master's return (keepalived preempts).
"""

from __future__ import annotations

import signal
from pathlib import Path

from cloudvip.config.companion_file import KeepalivedVerdict, keepalived_accepts
from cloudvip.state_machine import master_down_interval
from .cloud_demo import CloudLab, EmulatedCloud
from .daemons import Daemon
from .hardened_keepalived import PairFiles, ScriptUser, SecureDir, notify_wrapper, write_pair_files

KEEPALIVED24 = "/var/cache/cloudvip/keepalived-2.4.3/keepalived/keepalived"  # `make test` builds it there
START_TIMEOUT = 15.0


class CompanionLab(CloudLab):
    echo = CloudLab.echo + ("keepalived says", "keepalived said", "hears a lower priority", "Entering MASTER",
                            "Entering BACKUP")

    def __init__(self, workdir: Path, cloud: EmulatedCloud) -> None:
        super().__init__(workdir, cloud)
        self.companions: list[Daemon] = []
        self.user = ScriptUser()
        self.secure: SecureDir | None = None
        self.files: list[PairFiles] = []

    def start(self, i: int) -> None:
        """The companion first (systemd orders it before keepalived), then keepalived."""
        companion = self.companions[i].start()
        if self.topo.wait_for(lambda: "cloudvip companion:" in companion.log or not companion.alive,
                              START_TIMEOUT, 0.05) is None or not companion.alive:
            raise RuntimeError(f"node{i + 1}'s companion did not start:\n{companion.log}")
        self.agents[i].start()

    def stop(self, i: int, sig: signal.Signals) -> None:
        for d in (self.agents[i], self.companions[i]):
            if d.alive:
                d.kill() if sig == signal.SIGKILL else d.term(10)

    def agent_lines(self) -> None:
        for i in sorted(self.priorities):
            for role, d in (("keepalived", self.agents[i]), ("companion", self.companions[i])):
                key = i * 2 + (role == "companion")
                if not d.log_path.exists():
                    continue
                with open(d.log_path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(self.log_pos.get(key, 0))
                    for line in fh:
                        if any(mark in line for mark in self.echo):
                            print(f"           node{i + 1} {role:10}| {line.rstrip()}")
                    self.log_pos[key] = fh.tell()

    def verdicts(self, conf: Path) -> list[str]:
        """`keepalived -t` on node1's keepalived.conf, in its namespace (keepalived checks the interface)."""
        lines = []
        for binary in ("keepalived", KEEPALIVED24):
            verdict: KeepalivedVerdict = keepalived_accepts(conf, binary, self.topo.exec_args(self.topo.nodes[0]))
            if not verdict.ran:
                continue
            what = "exit 0, accepted" if verdict.ok else (verdict.output if verdict.inconclusive else
                                                           f"REJECTED:\n{verdict.output}")
            lines.append(f"  `{binary} -t`: {what}")
        return lines

    def run(self) -> int:
        lines = self.open_cloud()
        self.user.__enter__()
        self.secure = SecureDir()
        wrapper = notify_wrapper(self.secure.path)
        for i, node in enumerate(self.topo.nodes):
            peers = [n for n in self.topo.nodes if n is not node]
            self.files.append(write_pair_files(self.workdir / f"node{i + 1}", node, peers,
                                               priority=self.priorities[i], cloud_block=self.cloud.cloud_block(i),
                                               notify=wrapper, vip=f"{self.cloud.vip}/{self.prefix}", version=2,
                                               advert=1, script_user=self.user.name))
        self.agents = [Daemon(self.topo, node, "keepalived", self.files[i].keepalived_conf, self.workdir)
                       for i, node in enumerate(self.topo.nodes)]
        self.companions = [Daemon(self.topo, node, "companion", self.files[i].companion_conf, self.workdir,
                                  log_level="info", env=self.cloud.env()) for i, node in enumerate(self.topo.nodes)]
        for i in range(2):
            print(f"  node{i + 1} {self.topo.nodes[i].ip} priority {self.priorities[i]}: {lines[i]}")
        print(f"  keepalived runs notify scripts as {self.user.name} (enable_script_security); "
              f"`cloudvip notify` from {wrapper}")
        print(f"\n  node1's keepalived.conf ({self.files[0].keepalived_conf}):\n")
        print("    " + self.files[0].keepalived_conf.read_text().rstrip().replace("\n", "\n    "))
        print(*self.verdicts(self.files[0].keepalived_conf), sep="\n")
        print(f"\n  node1's companion file ({self.files[0].companion_conf}):\n")
        print("    " + self.files[0].companion_conf.read_text().rstrip().replace("\n", "\n    ") + "\n")
        if not self.elect("keepalived and a companion on each node"):
            return 1
        failover = self.kill_master("keepalived and its companion")
        if failover is None:
            return 1
        self.say(f"failover: {failover:.3f} s after the kill (keepalived's Master_Down_Interval "
                 f"{master_down_interval(2, 90, 100):.3f} s after node1's last advert, then `cloudvip notify` as "
                 f"{self.user.name} and one API write); {self.view()}")
        if not self.restart_node1("its keepalived"):
            return 1
        print("\nlab OK: stock keepalived (hardened) elected, cloudvip's companion moved the VIP in the cloud")
        return 0

    def cleanup(self) -> None:
        try:
            for d in self.companions:
                if d.alive:
                    d.kill()
            super().cleanup()
        finally:
            if self.secure is not None:
                self.secure.close()
            self.user.__exit__()
