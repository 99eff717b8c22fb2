"""The Debian package, installed as an operator installs it, in a clean bookworm (a minimal root made
by mmdebstrap): what `dpkg -i` puts where and changes nowhere else, the units as systemd reads
them, the installed program, its man pages and completion, the units' start, reload and stop
commands run against a real interface in a namespace (systemd is not PID 1 here), lintian, an
upgrade that keeps the operator's settings, and a purge that leaves the system as it found it.

`make package-test` runs them on the package `make dist` built (CLOUDVIP_DEB); without one they
are skipped, and under CLOUDVIP_PACKAGE_TESTS=required a skip is a failure."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip import __version__

DEB = os.environ.get("CLOUDVIP_DEB", "")
REQUIRED = os.environ.get("CLOUDVIP_PACKAGE_TESTS") == "required"
UNITS = ("cloudvip.service", "cloudvip-companion.service")
# what dpkg, man-db and deb-systemd-helper keep about every package: not the package's own doing
BOOKKEEPING = ("var/lib/dpkg/", "var/log/", "var/cache/man/", "var/cache/debconf/", "var/lib/systemd/deb-systemd-")


def _missing() -> str | None:
    if not DEB or not Path(DEB).is_file():
        return "no package: CLOUDVIP_DEB names none (make package-test builds one with make dist)"
    if os.geteuid() != 0:
        return "needs root (chroot, namespaces)"
    for tool in ("mmdebstrap", "lintian", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


if (why := _missing()) is not None:
    if REQUIRED:
        raise RuntimeError(f"the package tests cannot run: {why}")
    pytestmark = pytest.mark.skip(reason=why)


#: what the commands in the chroot get: a plain environment, as systemd gives a unit (nothing of ours leaks in)
PLAIN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def run_in(root: Path, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A shell command inside the chroot, as an operator's shell would run it."""
    env = {**PLAIN_ENV, "HOME": "/root", "TERM": "dumb"}
    result = subprocess.run(["chroot", str(root), "sh", "-c", command], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{command}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every file, link and directory of the root (mode, size, mtime; a link's target)."""
    seen: dict[str, tuple[int, int, int, str]] = {}
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        if rel_top in ("proc", "sys", "dev", "run", "tmp"):
            dirs.clear()
            continue
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            rel = os.path.normpath(os.path.join(rel_top, name))
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            target = os.readlink(path) if os.path.islink(path) else ""
            seen[rel] = (st.st_mode, 0 if is_dir else st.st_size, 0 if is_dir else st.st_mtime_ns, target)
    return seen


def changed(before: dict[str, tuple[int, int, int, str]], after: dict[str, tuple[int, int, int, str]]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def not_bookkeeping(paths: set[str]) -> set[str]:
    return {p for p in paths if not p.startswith(BOOKKEEPING)}


class Machine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clean: dict[str, tuple[int, int, int, str]] = {}

    def install(self, deb: Path) -> subprocess.CompletedProcess[str]:
        shutil.copy(deb, self.root / "tmp" / deb.name)
        return run_in(self.root, f"dpkg -i /tmp/{deb.name}")

    def package_paths(self) -> set[str]:
        """dpkg's list, where the files are (bookworm's root is merged: /lib is a link to usr/lib)."""
        listed = run_in(self.root, "dpkg -L cloudvip").stdout.split()
        return {self.where(p) for p in listed if p != "/."}

    def where(self, path: str) -> str:
        parent = os.path.realpath(self.root / os.path.dirname(path.lstrip("/")))
        return os.path.relpath(os.path.join(parent, os.path.basename(path)), self.root)


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    root = Path(tempfile.mkdtemp(prefix="cvdeb-", dir="/var/tmp"))
    try:
        made = subprocess.run(["mmdebstrap", "--variant=apt", "--include=python3,man-db,systemd,iproute2,"
                               "bash-completion,procps", "bookworm", str(root)],
                              capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]
        m = Machine(root)
        m.clean = snapshot(root)
        yield m
    finally:
        if os.path.ismount(root / "proc"):
            subprocess.run(["umount", "-l", str(root / "proc")], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(machine: Machine) -> Machine:
    machine.install(Path(DEB))
    return machine


def test_install_changes_nothing_but_its_own_paths(installed: Machine) -> None:
    after = snapshot(installed.root)
    own = installed.package_paths()
    # the bytecode postinst compiles is inside the package's own tree
    outside = {p for p in not_bookkeeping(changed(installed.clean, after))
               if p not in own and not p.startswith("opt/cloudvip/")}
    assert not outside, sorted(outside)
    for path in ("usr/bin/cloudvip", "opt/cloudvip/bin/cloudvip", "lib/systemd/system/cloudvip.service",
                 "lib/systemd/system/cloudvip-companion.service", "usr/share/man/man8/cloudvip.8.gz",
                 "usr/share/man/man5/cloudvip.conf.5.gz", "usr/share/bash-completion/completions/cloudvip",
                 "etc/default/cloudvip", "usr/share/doc/cloudvip/examples/keepalived.conf"):
        assert installed.where(path) in own, path
    # not enabled, not started by the install: the operator enables it after `cloudvip doctor`
    assert not list((installed.root / "etc/systemd/system").rglob("cloudvip*"))


def test_the_installed_program_runs(installed: Machine) -> None:
    assert run_in(installed.root, "cloudvip --version").stdout.strip() == f"cloudvip {__version__}"
    lines = run_in(installed.root, "cloudvip --help").stdout.splitlines()
    assert lines[2] == "Keep a virtual IP on the healthy VM of a pair, moved through the cloud's API."
    # every provider's SDK the package was built with imports from the venv
    probe = ("import importlib.metadata as m; "
             "print(' '.join(sorted(e.name for e in m.entry_points(group='cloudvip.providers'))))")
    assert run_in(installed.root, f"/opt/cloudvip/bin/python3 -c \"{probe}\"").stdout.split() == \
        ["aws", "azure", "gcp", "hetzner", "linux"]
    sample = run_in(installed.root, "cloudvip check-config -f /usr/share/doc/cloudvip/examples/keepalived.conf")
    assert "OK, 1 instance" in sample.stdout, sample.stdout + sample.stderr
    # bytecode compiled by postinst, not shipped
    assert list((installed.root / "opt/cloudvip/lib").rglob("cloudvip/__pycache__/*.pyc"))


def test_systemd_accepts_the_installed_units(installed: Machine) -> None:
    units = " ".join(f"/lib/systemd/system/{u}" for u in UNITS)
    verify = run_in(installed.root, f"systemd-analyze verify {units}", check=False)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    for unit in UNITS:
        text = (installed.root / "lib/systemd/system" / unit).read_text()
        assert "/usr/local/bin" not in text and "ExecStart=/usr/bin/cloudvip " in text, unit


def test_man_shows_both_pages(installed: Machine) -> None:
    page8 = run_in(installed.root, "MANWIDTH=100 man -P cat cloudvip").stdout
    for command in ("check-config", "run", "companion", "notify", "status", "takeover", "release", "doctor"):
        assert re.search(rf"^\s+{command}$", page8, re.M), command
    for section in ("SIGNALS", "FILES", "EXIT STATUS"):
        assert section in page8
    page5 = run_in(installed.root, "MANWIDTH=100 man -P cat 5 cloudvip.conf").stdout
    for keyword in ("cloud aws", "cloud hetzner", "cloud gcp", "cloud azure", "haproxy_socket", "auth_hmac"):
        assert keyword in page5, keyword


def test_bash_completes_commands_and_options(installed: Machine) -> None:
    script = ("source /usr/share/bash-completion/bash_completion; "
              "source /usr/share/bash-completion/completions/cloudvip; "
              "COMP_WORDS=(cloudvip che); COMP_CWORD=1; COMP_LINE='cloudvip che'; COMP_POINT=12; _cloudvip; "
              "echo \"1:${COMPREPLY[*]}\"; "
              "COMP_WORDS=(cloudvip run --met); COMP_CWORD=2; COMP_LINE='cloudvip run --met'; COMP_POINT=18; "
              "_cloudvip; echo \"2:${COMPREPLY[*]}\"")
    out = run_in(installed.root, f"bash -c {shlex.quote(script)}").stdout
    assert "1:check-config" in out and "2:--metrics" in out, out


UNIT_CONFIG = """\
vrrp_instance VI_1 {
    state BACKUP
    interface d0
    virtual_router_id 51
    version 3
    priority 150
    advert_int 0.1
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
    }
    auth_hmac {
        key 1 hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
        active_key 1
    }
    virtual_ipaddress {
        192.0.2.100/24
    }
}
"""


class Namespace:
    """A network namespace with a veth pair, for the agent the tests start from the installed package."""

    def __init__(self, interface: str, address: str) -> None:
        self.name = f"cvdeb{os.getpid()}"
        self.interface = interface
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        for cmd in (f"link add {interface} type veth peer name {interface}p", f"addr add {address} dev {interface}",
                    f"link set {interface}p up", f"link set {interface} up", "link set lo up"):
            subprocess.run(["ip", "-n", self.name, *cmd.split()], check=True)

    def has(self, address: str) -> bool:
        out = subprocess.run(["ip", "-n", self.name, "addr", "show", self.interface], capture_output=True,
                             text=True).stdout
        return f" {address} " in out

    def wait_for(self, address: str, agent: subprocess.Popen[str], timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while not self.has(address) and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.1)
        return self.has(address)

    def start(self, root: Path, command: str) -> subprocess.Popen[str]:
        """The unit's ExecStart, run as systemd would (a plain environment), in the chroot."""
        return subprocess.Popen([*self.inside(root), *shlex.split(command)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=PLAIN_ENV)

    def run(self, root: Path, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.inside(root), "sh", "-c", command], capture_output=True, text=True,
                              timeout=120, env=PLAIN_ENV)

    def inside(self, root: Path) -> list[str]:
        """The prefix that runs a command in this namespace and in the chroot."""
        return ["ip", "netns", "exec", self.name, "chroot", str(root)]

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def stop(agent: subprocess.Popen[str] | None) -> None:
    if agent is not None and agent.poll() is None:
        agent.kill()
        agent.wait()


def unit_commands(root: Path, unit: str) -> dict[str, str]:
    """The unit's Exec lines with its Environment= substituted, as systemd would run them."""
    text = (root / "lib/systemd/system" / unit).read_text()
    env = dict(re.findall(r"^Environment=(\w+)=(.*)$", text, re.M))
    execs = dict(re.findall(r"^(Exec\w+)=(.*)$", text, re.M))
    return {key: re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), line).strip()
            for key, line in execs.items()}


def test_the_units_start_reload_and_stop_commands_work(installed: Machine) -> None:
    root = installed.root
    (root / "etc/keepalived").mkdir(exist_ok=True)
    (root / "etc/keepalived/keepalived.conf").write_text(UNIT_CONFIG)
    commands = unit_commands(root, "cloudvip.service")
    check = run_in(root, commands["ExecStartPre"], check=False)
    assert check.returncode == 0, check.stderr
    ns = Namespace("d0", "192.0.2.1/24")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    agent: subprocess.Popen[str] | None = None
    try:
        agent = ns.start(root, commands["ExecStart"])
        assert ns.wait_for("192.0.2.100/24", agent), "the agent started by ExecStart never became master"
        assert commands["ExecReload"] == "/bin/kill -HUP $MAINPID"
        agent.send_signal(signal.SIGHUP)  # ExecReload
        time.sleep(1.0)
        assert agent.poll() is None and ns.has("192.0.2.100/24"), "a reload must leave the master in place"
        agent.send_signal(signal.SIGTERM)  # systemctl stop (KillSignal=SIGTERM)
        out, _ = agent.communicate(timeout=20)
        assert agent.returncode == 0, out
        assert not ns.has("192.0.2.100/24"), "a stopped agent must release the VIP"
        assert "reload" in out.lower(), out
        assert list((root / "var/lib/cloudvip").iterdir()), "auth_hmac state kept across restarts"
    finally:
        stop(agent)
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)
        ns.close()


def test_lintian_is_clean(installed: Machine) -> None:
    lint = subprocess.run(["lintian", "--fail-on", "error,warning", DEB], capture_output=True, text=True, timeout=600)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    overrides = (Path(__file__).resolve().parents[2] / "debian/cloudvip.lintian-overrides").read_text()
    tags = re.findall(r"^cloudvip: (\S+)", overrides, re.M)
    for block in overrides.split("\n\n"):  # every override comes with its reason
        assert block.lstrip().startswith("#"), block
    assert tags


def test_an_upgrade_keeps_the_operators_settings(installed: Machine, tmp_path: Path) -> None:
    root = installed.root
    defaults = root / "etc/default/cloudvip"
    defaults.write_text(defaults.read_text() + 'CLOUDVIP_ARGS="--metrics 9723"\n')
    unpacked = tmp_path / "pkg"
    subprocess.run(["dpkg-deb", "-R", DEB, str(unpacked)], check=True)
    control = unpacked / "DEBIAN/control"
    control.write_text(re.sub(r"^Version: (.*)$", r"Version: \1+upgrade1", control.read_text(), flags=re.M))
    newer = tmp_path / "cloudvip_upgrade.deb"
    subprocess.run(["dpkg-deb", "-b", "-Zgzip", str(unpacked), str(newer)], check=True, capture_output=True)
    installed.install(newer)
    assert run_in(root, "dpkg-query -W -f '${Version}' cloudvip").stdout.endswith("+upgrade1")
    assert 'CLOUDVIP_ARGS="--metrics 9723"' in defaults.read_text()
    assert run_in(root, "cloudvip --version").returncode == 0


def test_purge_leaves_the_system_as_it_was(installed: Machine) -> None:
    run_in(installed.root, "dpkg --purge cloudvip")
    left = not_bookkeeping(changed(installed.clean, snapshot(installed.root)))
    # the test's keepalived.conf is the operator's, not the package's; the minimal root's /opt is
    # an empty directory no package registers, so dpkg removes it with the last package in it
    assert left <= {"etc/keepalived", "etc/keepalived/keepalived.conf", "opt"}, sorted(left)
    assert not (installed.root / "opt/cloudvip").exists() and not (installed.root / "var/lib/cloudvip").exists()


def readme_first_deployment() -> list[str]:
    """The README's "First deployment" commands, as a user would paste them."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## First deployment"):]
    block = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert block is not None
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_first_deployment_runs(machine: Machine) -> None:
    """After the purge, on the clean machine: the README's commands, one after the other, as written
    (the operator's edit of the example in between, as the README asks: no cloud here, so no cloud
    block; the example's interface and addresses on a veth)."""
    root = machine.root
    commands = readme_first_deployment()
    install = commands[0]
    assert install == f"apt install ./{Path(DEB).name}", "the README must name the package make dist builds"
    shutil.copy(DEB, root / "root" / Path(DEB).name)
    run_in(root, f"cd /root && {install} -y")
    ns = Namespace("ens5", "10.0.1.11/24")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    agent: subprocess.Popen[str] | None = None
    try:
        for command in commands[1:]:
            if command.startswith("cloudvip doctor"):
                # the operator's edit: this machine has no cloud
                conf = root / "etc/keepalived/keepalived.conf"
                conf.write_text(re.sub(r"\n    cloud aws \{.*?\n    \}\n", "\n", conf.read_text(), flags=re.S))
                doctor = ns.run(root, command)
                # no peer answers here: the doctor says so (and exits 1), after checking the rest
                assert "✔ VI_1  interface" in doctor.stdout and "peer" in doctor.stdout, doctor.stdout + doctor.stderr
            elif command.startswith("systemctl enable --now"):
                enable = run_in(root, command, check=False)
                # enabled; the start needs systemd as PID 1: the unit's commands are run as it would run them
                assert (root / "etc/systemd/system/multi-user.target.wants/cloudvip.service").is_symlink(), enable
                unit = unit_commands(root, "cloudvip.service")
                assert run_in(root, unit["ExecStartPre"]).returncode == 0
                agent = ns.start(root, unit["ExecStart"])
                assert ns.wait_for("10.0.1.100/24", agent), "the enabled unit's agent never became master"
            elif command.startswith("cloudvip status"):
                status = ns.run(root, command)
                assert status.returncode == 0 and "MASTER" in status.stdout, status.stdout + status.stderr
            else:
                result = ns.run(root, command)
                assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        assert agent is not None
    finally:
        stop(agent)
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)
        ns.close()
