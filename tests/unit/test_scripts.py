"""Running scripts as keepalived does: no shell, timeouts kill the group, script security."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from cloudvip.scripts import DEFAULT_SCRIPT_USER, RunAs, ScriptError, ScriptRunner, default_run_as, insecure_component


def script(tmp_path: Path, body: str, name: str = "s.sh") -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_exit_codes(tmp_path: Path) -> None:
    ok = script(tmp_path, "exit 0\n", "ok.sh")
    bad = script(tmp_path, "exit 3\n", "bad.sh")
    r = ScriptRunner()
    assert run(r.run((str(ok),), 5)).ok
    res = run(r.run((str(bad),), 5))
    assert not res.ok and res.returncode == 3


def test_arguments_are_passed_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = script(tmp_path, f'printf "%s|" "$@" > {out}\n')
    run(ScriptRunner().run((str(s), "a b", "$HOME", "*"), 5))
    assert out.read_text() == "a b|$HOME|*|"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    s = script(tmp_path, f"sleep 30 & echo $! > {marker}\nwait\n")
    res = run(ScriptRunner().run((str(s),), 0.5))
    assert res.timed_out and not res.ok
    child = int(marker.read_text())
    for _ in range(50):
        try:  # gone, or a zombie waiting for init to reap it
            if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except FileNotFoundError:
            break
        asyncio.run(asyncio.sleep(0.02))
    else:
        pytest.fail("the script's child survived the timeout")


def test_bare_names_are_searched_in_path() -> None:
    assert run(ScriptRunner().run(("true",), 5)).ok


@pytest.mark.parametrize("argv,message", [
    (("/nonexistent/check",), "no such file"),
    (("no-such-command-anywhere",), "not found in PATH"),
])
def test_unrunnable_scripts_raise(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        run(ScriptRunner().run(argv, 5))


def test_not_executable(tmp_path: Path) -> None:
    p = tmp_path / "x.sh"
    p.write_text("#!/bin/sh\n")
    p.chmod(0o644)
    with pytest.raises(ScriptError, match="not executable"):
        ScriptRunner().check((str(p),))


def test_script_security_refuses_paths_others_can_write(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    s = script(d, "exit 0\n")
    assert insecure_component(s) == d
    with pytest.raises(ScriptError, match="enable_script_security"):
        ScriptRunner(secure=True).check((str(s),))
    assert ScriptRunner(secure=False).check((str(s),)) == s


def test_script_security_accepts_root_owned_paths() -> None:
    assert insecure_component(Path("/bin/true")) is None


def test_group_writable_script_is_insecure(tmp_path: Path) -> None:
    d = tmp_path / "closed"
    d.mkdir()
    s = script(d, "exit 0\n")
    os.chown(s, 0, 1)  # group daemon
    s.chmod(0o775 | stat.S_IWGRP)
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    assert insecure_component(s) == s.resolve()


def test_unknown_user_is_an_error(tmp_path: Path) -> None:
    s = script(tmp_path, "exit 0\n")
    with pytest.raises(ScriptError, match="does not exist"):
        run(ScriptRunner(RunAs("no-such-user-xyz")).run((str(s),), 5))


def test_runs_as_the_script_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    import pwd
    import shutil
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="cloudvip-test-", dir="/tmp"))  # reachable by nobody
    try:
        d.chmod(0o777)
        out = d / "uid"
        s = script(d, f"id -u > {out}\n")
        assert run(ScriptRunner(RunAs("nobody")).run((str(s),), 5)).ok
        assert int(out.read_text()) == pwd.getpwnam("nobody").pw_uid
    finally:
        shutil.rmtree(d)


def test_scripts_get_a_minimal_environment_without_the_agents_secrets(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("HCLOUD_TOKEN", "hc-secret"), ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
                        ("AWS_SESSION_TOKEN", "aws-session"), ("NOTIFY_SOCKET", "/run/systemd/notify"),
                        ("LANG", "C.UTF-8"), ("LC_ALL", "C"), ("TZ", "UTC")):
        monkeypatch.setenv(name, value)
    out = tmp_path / "env"
    s = script(tmp_path, f"env > {out}\n")
    assert run(ScriptRunner().run((str(s),), 5)).ok
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert not {"HCLOUD_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "NOTIFY_SOCKET"} & set(env)
    assert "secret" not in out.read_text()
    assert env["LANG"] == "C.UTF-8" and env["LC_ALL"] == "C" and env["TZ"] == "UTC" and env["PATH"]


def test_script_security_never_falls_back_to_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cloudvip.scripts.user_exists", lambda name: False)
    refused = default_run_as(None, None, secure=True)
    with pytest.raises(ScriptError, match="never as root by fallback"):
        run(ScriptRunner(refused, secure=True).run(("true",), 5))
    assert default_run_as(None, None, secure=False) == RunAs()  # keepalived: itself, without script security
    assert default_run_as("nobody", "nogroup", secure=True) == RunAs("nobody", "nogroup")
    monkeypatch.setattr("cloudvip.scripts.user_exists", lambda name: name == DEFAULT_SCRIPT_USER)
    assert default_run_as(None, None, secure=True) == RunAs(DEFAULT_SCRIPT_USER)
    assert default_run_as(None, None, secure=False) == RunAs(DEFAULT_SCRIPT_USER)


def _swap_during_check(monkeypatch: pytest.MonkeyPatch, swap: object) -> None:
    """Run `swap` in the middle of the security check (after the file was opened), as an
    attacker racing the agent would."""
    def check_then_swap(path: Path) -> None:
        swap()  # type: ignore[operator]
        return None
    monkeypatch.setattr("cloudvip.scripts.insecure_component", check_then_swap)


def test_the_file_checked_is_the_file_run_whatever_the_symlink_says_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ran"
    good = script(tmp_path, f"echo good > {out}\n", "good.sh")
    evil = script(tmp_path, f"echo evil > {out}\n", "evil.sh")
    link = tmp_path / "check"
    link.symlink_to(good)

    def swap() -> None:
        link.unlink()
        link.symlink_to(evil)
    _swap_during_check(monkeypatch, swap)
    assert run(ScriptRunner(secure=True).run((str(link),), 5)).ok
    assert out.read_text() == "good\n"


def test_a_file_replaced_during_the_check_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ran"
    good = script(tmp_path, f"echo good > {out}\n", "good.sh")
    evil = script(tmp_path, f"echo evil > {out}\n", "evil.sh")
    _swap_during_check(monkeypatch, lambda: os.replace(evil, good))
    with pytest.raises(ScriptError, match="replaced while it was being checked"):
        run(ScriptRunner(secure=True).run((str(good),), 5))
    assert not out.exists()
