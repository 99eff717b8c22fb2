"""keepalived.conf read the way keepalived reads it, not the way it looks.

Each case says what keepalived 2.2.7 and 2.4.3 do with the same lines (their `-t` output, run
on these files): cloudvip runs the same configuration and warns where keepalived reads
something other than what is written (or refuses, on the line, what it cannot honour)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudvip.config import ConfigError, loads
from cloudvip.packet import AuthType


def instance(body: str, top: str = "", config_id: str | None = None) -> tuple[object, list[str]]:
    cfg = loads(f"{top}vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n{body}"
                "    virtual_ipaddress {\n        192.0.2.10\n    }\n}\n", "k.conf", config_id=config_id)
    return (cfg.instances[0] if cfg.instances else None), [str(d) for d in cfg.diagnostics]


def test_conditional_lines_split_on_a_tab_too() -> None:
    # keepalived's own doc/samples/keepalived.conf.conditional_conf writes `@high<TAB>priority 150`
    body = "@high\tpriority 150\n@^high\tpriority 50\n"
    high, warnings = instance(body, config_id="high")
    low, _ = instance(body, config_id="low")
    assert (high.priority, low.priority) == (150, 50) and warnings == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("state", ["master", "Master", "SLAVE"])
def test_state_is_case_sensitive_and_unknown_means_backup(state: str) -> None:
    # keepalived: "(VI_1) unknown state 'master', defaulting to BACKUP"
    inst, warnings = instance(f"    state {state}\n    priority 100\n")
    assert inst.state_hint == "BACKUP"  # type: ignore[attr-defined]
    assert any(f"state {state!r} is not MASTER or BACKUP" in w and "reads BACKUP" in w for w in warnings), warnings
    assert state != "master" or any("did you mean MASTER?" in w for w in warnings)


@pytest.mark.parametrize("value", ["pass", "PASS;"])
def test_an_unknown_auth_type_means_no_authentication(value: str) -> None:
    # keepalived: "(VI_1) unknown authentication type 'PASS;'", and the instance runs without one
    inst, warnings = instance(f"    authentication {{\n        auth_type {value}\n        auth_pass secret\n    }}\n")
    assert inst.auth is None  # type: ignore[attr-defined]
    mine = [w for w in warnings if "auth_type" in w]
    assert len(mine) == 1 and f"auth_type {value!r} is not PASS or AH" in mine[0], warnings
    assert "no authentication" in mine[0] and "k.conf:5:" in mine[0]
    assert not any("no auth_type" in w for w in warnings)


def test_auth_type_ah_is_one_error_on_its_line() -> None:
    with pytest.raises(ConfigError) as exc:
        instance("    authentication {\n        auth_type AH\n        auth_pass secret\n    }\n")
    errors = [str(d) for d in exc.value.diagnostics if d.severity.value == "error"]
    assert len(errors) == 1 and errors[0].startswith("k.conf:5: auth_type AH: cloudvip does not speak IPsec AH")


def test_half_authentication_blocks_are_ignored_as_keepalived_ignores_them() -> None:
    no_type, w1 = instance("    authentication {\n        auth_pass secret\n    }\n")  # keepalived: silently none
    no_pass, w2 = instance("    authentication {\n        auth_type PASS\n    }\n")  # "no password given. Ignoring"
    assert no_type.auth is None and no_pass.auth is None  # type: ignore[attr-defined]
    assert any("auth_pass but no auth_type" in w for w in w1) and any("without auth_pass" in w for w in w2)
    ok, _ = instance("    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n")
    assert ok.auth is not None and ok.auth.auth_type is AuthType.PASS  # type: ignore[attr-defined]


def test_a_file_with_lvs_sections_only_is_accepted_with_nothing_to_run() -> None:
    cfg = loads("virtual_server 192.0.2.100 80 {\n    delay_loop 6\n    real_server 192.0.2.2 80 {\n"
                "        weight 1\n    }\n}\n", "k.conf")
    assert cfg.instances == ()
    assert any("nothing for cloudvip to run" in str(d) and "LVS only: virtual_server" in str(d)
               for d in cfg.diagnostics)


def test_undefined_references_and_empty_sync_groups_are_ignored_with_a_warning() -> None:
    # keepalived: "track script nosuch not found, ignoring...", "Sync group G1 has no members - removing",
    # "Virtual router VI_NOPE specified in sync group G2 doesn't exist - ignoring"
    cfg = loads("vrrp_sync_group G1 {\n    group {\n    }\n}\n"
                "vrrp_sync_group G2 {\n    group {\n        VI_1\n        VI_NOPE\n    }\n}\n"
                "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    track_script {\n"
                "        nosuch\n    }\n    track_file {\n        nofile\n    }\n"
                "    virtual_ipaddress {\n        192.0.2.10\n    }\n}\n", "k.conf")
    inst = cfg.instances[0]
    assert inst.track_scripts == () and inst.track_files == ()
    assert [(g.name, g.members) for g in cfg.sync_groups] == [("G2", ("VI_1",))]
    text = "\n".join(str(d) for d in cfg.diagnostics)
    for expected in ("k.conf:15: warning: vrrp_instance VI_1 tracks vrrp_script 'nosuch', which is not defined",
                     "tracks track_file 'nofile', which is not defined", "G1 has no members: removed",
                     "names 'VI_NOPE', which is not a vrrp_instance: ignored"):
        assert expected in text, text


def test_a_vrrp_script_without_script_is_removed_and_its_tracking_ignored() -> None:
    # keepalived: "No script set for vrrp_script chk - removing", then "track script chk not found"
    inst, warnings = instance("    track_script {\n        chk\n    }\n", top="vrrp_script chk {\n    interval 2\n}\n")
    assert inst.track_scripts == ()  # type: ignore[attr-defined]
    assert any("vrrp_script chk has no script: removed" in w for w in warnings), warnings


def test_comments_are_removed_before_definitions_are_substituted() -> None:
    inst, warnings = instance("    priority 100  # was $OLD_PRIORITY\n", top="# uses $NOT_DEFINED\n! and $THIS\n")
    assert inst.priority == 100 and warnings == []  # type: ignore[attr-defined]


def test_keepalived_standard_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRRP_PRIO", "120")
    inst, warnings = instance("    priority ${_ENV VRRP_PRIO}\n    authentication {\n        auth_type PASS\n"
                              "        auth_pass a${_HASH}b\\!c\n    }\n")
    assert inst.priority == 120 and inst.auth.password == b"a#b!c"  # type: ignore[attr-defined]
    assert warnings == []


def test_check_unicast_src_is_what_cloudvip_always_does() -> None:
    inst, warnings = instance("    check_unicast_src\n    unicast_peer {\n        192.0.2.2\n    }\n")
    assert warnings == [] and inst is not None


def test_an_interface_that_is_an_ip_address_is_warned_about() -> None:
    cfg = loads("vrrp_instance VI_1 {\n    interface 192.0.2.1\n    virtual_router_id 51\n"
                "    virtual_ipaddress {\n        192.0.2.10\n    }\n}\n", "k.conf")
    assert any("k.conf:2: warning: interface 192.0.2.1 is an IP address" in str(d) for d in cfg.diagnostics)


def test_vrrp_strict_is_applied_as_keepalived_applies_it() -> None:
    body = ("    state MASTER\n    priority 100\n    authentication {\n        auth_type PASS\n"
            "        auth_pass secret\n    }\n    unicast_peer {\n        192.0.2.2\n    }\n")
    inst, warnings = instance(body, top="global_defs {\n    vrrp_strict\n}\n")
    assert inst.auth is None and inst.state_hint == "BACKUP"  # type: ignore[attr-defined]
    assert inst.lower_prio_no_advert is True  # type: ignore[attr-defined]
    text = "\n".join(warnings)
    for expected in ("strict mode does not support authentication", "state MASTER must match being address owner",
                     "keepalived 2.4 drops this instance", "no accept mode", "cloudvip does neither"):
        assert expected in text, text
    plain, _ = instance(body)
    assert plain.auth is not None and plain.lower_prio_no_advert is False  # type: ignore[attr-defined]
    off, _ = instance(body + "    strict_mode off\n", top="global_defs {\n    vrrp_strict\n}\n")
    assert off.auth is not None  # the instance's strict_mode overrides vrrp_strict


def test_startup_delays_the_longer_of_the_two(tmp_path: Path) -> None:
    from cloudvip.agent import startup_delay

    cfg = loads("global_defs {\n    vrrp_startup_delay 5.5\n    vrrp_delay_after_boot 30\n}\n"
                "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n"
                "    virtual_ipaddress {\n        192.0.2.10\n    }\n}\n", "k.conf")
    assert cfg.diagnostics == ()
    uptime = tmp_path / "uptime"
    uptime.write_text("10.00 15.00\n")
    assert startup_delay(cfg.global_defs, uptime) == 20.0  # 30 s after boot, booted 10 s ago
    uptime.write_text("100.00 150.00\n")
    assert startup_delay(cfg.global_defs, uptime) == 5.5  # long since booted: vrrp_startup_delay alone


def test_no_virtual_ipaddress_is_an_instance_without_vips_on_purpose() -> None:
    text = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n%s}\n"
    assert any("has no virtual_ipaddress" in str(d) for d in loads(text % "", "k.conf").diagnostics)
    cfg = loads(text % "    no_virtual_ipaddress\n", "k.conf")
    assert cfg.instances[0].no_virtual_ipaddress and cfg.diagnostics == ()


def test_virtual_addresses_keepalived_cannot_read_are_skipped_or_clamped() -> None:
    # keepalived: "VRRP parsed invalid IP floating_ip. skipping IP...", "Invalid address prefix len 33
    # for address 10.0.0.5/33 - using 32"
    cfg = loads("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {\n"
                "        floating_ip\n        10.0.0.5/33\n        10.0.0.6\n    }\n}\n", "k.conf")
    assert [str(v.interface) for v in cfg.instances[0].vips] == ["10.0.0.5/32", "10.0.0.6/32"]
    text = "\n".join(str(d) for d in cfg.diagnostics)
    assert "k.conf:5: warning: 'floating_ip' is not an address: skipped" in text
    assert "k.conf:6: warning: prefix length '33' of 10.0.0.5 is not 0..32: /32" in text


def test_a_script_nobody_may_run_under_script_security_is_removed_as_keepalived_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # keepalived: "Unable to set default user for vrrp script chk - removing", then the track ignored
    import cloudvip.scripts

    monkeypatch.setattr(cloudvip.scripts, "user_exists", lambda name: False)  # no keepalived_script user
    top = 'global_defs {\n    enable_script_security\n}\nvrrp_script chk {\n    script "/bin/true"\n}\n'
    inst, warnings = instance("    track_script {\n        chk\n    }\n", top=top)
    assert inst.track_scripts == ()  # type: ignore[attr-defined]
    assert any("vrrp_script chk removed, as keepalived removes it" in w for w in warnings), warnings
    with_user, warnings = instance("    track_script {\n        chk\n    }\n",
                                   top=top.replace("enable_script_security", "enable_script_security\n"
                                                                             "    script_user nobody"))
    assert [r.name for r in with_user.track_scripts] == ["chk"]  # type: ignore[attr-defined]


def test_priority_as_keepalived_sets_it() -> None:
    """keepalived: `state MASTER` without a priority is the address owner (its adverts say 255:
    seen on the wire from 2.4.3); an invalid priority is "Using default 100"."""
    owner, w1 = instance("    state MASTER\n")
    assert owner.priority == 255 and any("address owner (priority 255)" in w for w in w1)  # type: ignore[attr-defined]
    plain, _ = instance("    state BACKUP\n")
    assert plain.priority == 100  # type: ignore[attr-defined]
    for bad in ("0", "300", "PRIORITY"):
        inst, w = instance(f"    priority {bad}\n")
        assert inst.priority == 100 and any(f"priority {bad!r} is not 1..255: 100" in x for x in w)  # type: ignore[attr-defined]


def test_a_security_violation_is_said_as_keepalived_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import cloudvip.scripts

    monkeypatch.setattr(cloudvip.scripts, "user_exists", lambda name: False)
    _, warnings = instance("    track_script {\n        chk\n    }\n",
                           top='vrrp_script chk {\n    script "/bin/true"\n}\n')
    assert any("SECURITY VIOLATION" in w and "run as root" in w for w in warnings), warnings
