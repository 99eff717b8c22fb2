"""keepalived.conf parsing: the tutorial's configs, syntax features, and errors with file:line."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface
from pathlib import Path

import pytest

from cloudvip.config import ConfigError, load, loads
from cloudvip.packet import AuthType

TUTORIAL = sorted((Path(__file__).parent.parent / "data" / "tutorial").glob("*.conf"))

BASIC = """
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.168.1.100/24
    }
    %s
}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        loads(text, "k.conf")
    return [str(d) for d in exc.value.diagnostics if d.severity.value == "error"]


def warnings_of(text: str) -> list[str]:
    return [str(d) for d in loads(text, "k.conf").diagnostics]


# ---------- the tutorial ----------

@pytest.mark.parametrize("path", TUTORIAL, ids=lambda p: p.name)
def test_every_tutorial_config_is_accepted(path: Path) -> None:
    cfg = load(path)
    assert cfg.instances
    assert not [d for d in cfg.diagnostics if "unknown keyword" in d.message]


def test_tutorial_master_backup_pair() -> None:
    d = Path(TUTORIAL[0]).parent
    m, b = load(d / "01-master.conf").instances[0], load(d / "02-backup.conf").instances[0]
    assert (m.state_hint, m.priority, b.state_hint, b.priority) == ("MASTER", 100, "BACKUP", 90)
    assert m.vrid == b.vrid == 51 and m.interface == "eth0" and m.advert_int == 1.0
    assert m.auth is not None and m.auth.auth_type is AuthType.PASS
    assert m.auth.password == b"secretpa"  # keepalived sends the first 8 characters
    assert m.vips[0].interface == ip_interface("192.168.1.100/24")


def test_tutorial_nopreempt() -> None:
    inst = load(TUTORIAL[0].parent / "03-nopreempt.conf").instances[0]
    assert inst.nopreempt and inst.state_hint == "BACKUP"


def test_tutorial_unicast() -> None:
    inst = load(TUTORIAL[0].parent / "04-unicast.conf").instances[0]
    assert inst.unicast_src_ip == ip_address("192.168.1.10")
    assert [p.address for p in inst.unicast_peers] == [ip_address("192.168.1.11")]


def test_tutorial_health_check() -> None:
    cfg = load(TUTORIAL[0].parent / "05-health-check.conf")
    s = cfg.scripts["check_nginx"]
    assert (s.script.argv, s.interval, s.weight, s.fall, s.rise) == (("/usr/local/bin/check_nginx.sh",), 2, -50, 3, 2)
    assert s.effective_timeout == 2
    assert [t.name for t in cfg.instances[0].track_scripts] == ["check_nginx"]


def test_tutorial_track_interface_weights() -> None:
    inst = load(TUTORIAL[0].parent / "06-track-interface.conf").instances[0]
    assert [(t.name, t.weight) for t in inst.track_interfaces] == [("eth0", None), ("eth1", -100)]


def test_tutorial_notify_scripts() -> None:
    inst = load(TUTORIAL[0].parent / "07-notify.conf").instances[0]
    assert inst.notify.master is not None and inst.notify.master.argv == ("/usr/local/bin/notify.sh", "master")
    assert inst.notify.fault is not None and inst.notify.fault.argv[1] == "fault"


def test_tutorial_haproxy() -> None:
    cfg = load(TUTORIAL[0].parent / "08-haproxy.conf")
    assert cfg.global_defs.router_id == "LB1"
    assert cfg.global_defs.script_user == "root" and cfg.global_defs.enable_script_security
    assert cfg.scripts["check_haproxy"].script.argv == ("/usr/bin/killall", "-0", "haproxy")


def test_tutorial_sync_group_and_labels() -> None:
    cfg = load(TUTORIAL[0].parent / "11-sync-group.conf")
    assert cfg.sync_groups[0].members == ("VI_WEB", "VI_DB")
    assert cfg.group_of("VI_DB") is cfg.sync_groups[0]
    assert cfg.instance("VI_WEB").vips[0].label == "eth0:web"
    assert cfg.sync_groups[0].notify.backup is not None


def test_tutorial_long_quoted_password_warns() -> None:
    cfg = load(TUTORIAL[0].parent / "12-security.conf")
    assert any("12-security.conf:12" in str(d) and "first 8" in d.message for d in cfg.diagnostics)
    assert cfg.instances[0].interface == "eth1"


# ---------- syntax ----------

def test_brace_on_next_line_and_inline_blocks() -> None:
    cfg = loads("""
vrrp_instance VI_1
{
    interface eth0
    virtual_router_id 5
    authentication { auth_type PASS
        auth_pass abc }
    virtual_ipaddress { 10.0.0.1/24 dev eth0 label eth0:x scope global brd 10.0.0.255 }
    unicast_peer { 10.0.0.3 min_ttl 250 max_ttl 255 }
}""")
    inst = cfg.instances[0]
    assert inst.auth is not None and inst.auth.password == b"abc"
    vip = inst.vips[0]
    assert (vip.dev, vip.label, vip.scope, str(vip.brd)) == ("eth0", "eth0:x", "global", "10.0.0.255")
    assert (inst.unicast_peers[0].min_ttl, inst.unicast_peers[0].max_ttl) == (250, 255)


def test_comments_and_quotes() -> None:
    cfg = loads("""
! a keepalived comment
vrrp_script chk {   # trailing comment
    script "/bin/check 'a b' --x"
}
vrrp_instance VI_1 {
    interface eth0   ! another
    virtual_router_id 5
    virtual_ipaddress { 10.0.0.1 }
    notify "/usr/local/bin/notify.sh"
    track_script { chk weight -20 reverse }
}""")
    assert cfg.scripts["chk"].script.argv == ("/bin/check", "a b", "--x")
    assert cfg.instances[0].vips[0].interface == ip_interface("10.0.0.1/32")  # no prefix: host
    ref = cfg.instances[0].track_scripts[0]
    assert (ref.weight, ref.reverse) == (-20, True)


def test_include_glob_relative_to_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text(BASIC.replace("VI_1", "VI_B").replace("51", "52") % "")
    (tmp_path / "conf.d" / "a.conf").write_text(BASIC % "")
    (tmp_path / "conf.d" / "scripts.inc").write_text('vrrp_script s { script "/bin/true" }\n')
    main = tmp_path / "keepalived.conf"
    main.write_text("include conf.d/*.conf\ninclude conf.d/scripts.inc\n")
    cfg = load(main)
    assert [i.name for i in cfg.instances] == ["VI_1", "VI_B"]
    assert "s" in cfg.scripts
    assert cfg.instances[1].loc.file.endswith("b.conf")


def test_include_inside_a_block(tmp_path: Path) -> None:
    (tmp_path / "vips.inc").write_text("10.1.1.1/24\n10.1.1.2/24\n")
    main = tmp_path / "k.conf"
    main.write_text("vrrp_instance V { interface eth0\nvirtual_router_id 3\n"
                    "virtual_ipaddress {\ninclude vips.inc\n}\n}\n")
    assert len(load(main).instances[0].vips) == 2


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text(BASIC.replace("virtual_router_id 51", "virtual_router_id 300") % "")
    main = tmp_path / "k.conf"
    main.write_text("include bad.conf\n")
    with pytest.raises(ConfigError) as exc:
        load(main)
    assert f"{tmp_path / 'bad.conf'}:5: virtual_router_id 300 is out of range (expected 1..255)" in str(exc.value)


def test_conditional_lines_and_variables() -> None:
    text = """
$PRIO=150
$VIP=10.0.0.100
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 5
@lb1 priority $PRIO
@^lb1 priority 90
    virtual_ipaddress { ${VIP}/24 }
}"""
    assert loads(text, config_id="lb1").instances[0].priority == 150
    assert loads(text, config_id="lb2").instances[0].priority == 90
    assert str(loads(text, config_id="lb2").instances[0].vips[0].interface) == "10.0.0.100/24"


def test_cloud_block_is_kept_for_the_provider() -> None:
    cfg = loads(BASIC % "cloud aws {\n mode secondary_ip\n route_tables rtb-1 rtb-2\n }")
    cloud = cfg.instances[0].cloud
    assert cloud is not None and cloud.provider == "aws"
    entry = cloud.get("route_tables")
    assert entry is not None and entry.values == ("rtb-1", "rtb-2")


# ---------- errors, with file:line and what was expected ----------

@pytest.mark.parametrize("line,message", [
    ("virtual_router_id 300", "k.conf:11: virtual_router_id 300 is out of range (expected 1..255)"),
    ("advert_int 0", "k.conf:11: advert_int 0 is out of range (expected 0.01..255 s)"),
    ("unicast_src_ip 10.0.0.300", "k.conf:11: '10.0.0.300' is not an IP address"),
    ("preempt_delay 5000", "k.conf:11: preempt_delay 5000 is out of range (expected 0..1000 s)"),
    ("interface this-name-is-far-too-long", "k.conf:11: 'this-name-is-far-too-long' is not a valid interface"),
    ("virtual_ipaddress {\n 10.0.0.5/24 dev\n }", "k.conf:12: dev needs a value"),
    ("virtual_ipaddress {\n 10.0.0.5 colour blue\n }", "k.conf:12: unknown virtual_ipaddress option 'colour'"),
    ("virtual_ipaddress {\n 10.0.0.5 scope galaxy\n }", "k.conf:12: scope 'galaxy' is not valid"),
    ("track_script {\n x weight -300\n }", "k.conf:12: x weight -300 is out of range (expected -253..253)"),
    ("unicast_src_ip 10.0.0.1\n unicast_peer {\n 10.0.0.1\n }",
     "k.conf:13: unicast_peer 10.0.0.1 is this node's own unicast_src_ip"),
    ("unicast_peer {\n 2001:db8::1\n }", "k.conf:12: unicast_peer 2001:db8::1 is IPv6 but VI_1 runs over IPv4"),
    ("authentication {\n auth_type AH\n auth_pass x\n }", "k.conf:12: auth_type AH: cloudvip does not speak IPsec AH"),
    ('notify_master "/bin/x \'unbalanced"', "k.conf:11: notify_master: cannot split"),
    ("cloud {\n }", "k.conf:11: cloud needs a provider name"),
])
def test_invalid_values_name_file_line_and_expectation(line: str, message: str) -> None:
    errs = errors_of(BASIC % line)
    assert any(e.startswith(message) for e in errs), errs


def test_missing_required_keywords() -> None:
    errs = errors_of("vrrp_instance VI_1 {\n priority 100\n}\n")
    assert "k.conf:1: vrrp_instance VI_1 has no interface (expected interface inside the block)" in errs
    assert any("has no virtual_router_id" in e for e in errs)


def test_unbalanced_braces() -> None:
    assert any("k.conf:1: block 'vrrp_instance' is never closed" in e
               for e in errors_of("vrrp_instance VI_1 {\n interface eth0\n"))
    assert any("k.conf:14: '}' without a matching '{'" in e for e in errors_of(BASIC % "" + "\n}\n"))


def test_duplicate_vrid_on_one_interface() -> None:
    text = BASIC % "" + BASIC.replace("VI_1", "VI_2") % ""
    assert any("virtual_router_id 51 is already used by VI_1 on eth0" in e for e in errors_of(text))
    # the same VRID on another interface or family is fine
    other = BASIC.replace("VI_1", "VI_2").replace("eth0", "eth1") % ""
    loads(BASIC % "" + other)


def test_duplicate_instance_and_script_names() -> None:
    assert any("vrrp_instance VI_1 is defined twice" in e
               for e in errors_of(BASIC % "" + BASIC.replace("51", "52") % ""))
    script = 'vrrp_script s {\n script "/bin/true"\n}\n'
    assert any("vrrp_script s is defined twice" in e for e in errors_of(script + script + BASIC % ""))


def test_all_errors_are_reported_at_once() -> None:
    text = BASIC.replace("virtual_router_id 51", "virtual_router_id 0").replace("advert_int 1", "advert_int x") \
        % "version 4"
    assert len(errors_of(text)) == 3


# ---------- warnings and keepalived's own adjustments ----------

def test_unknown_keywords_warn_with_location() -> None:
    warns = warnings_of(BASIC % "frobnicate 3" + "\nnot_a_block {\n}\n")
    assert "k.conf:11: warning: unknown keyword 'frobnicate' in vrrp_instance VI_1, ignored" in warns
    assert "k.conf:14: warning: unknown keyword 'not_a_block' at top level, ignored" in warns


def test_lvs_sections_are_accepted_with_a_note() -> None:
    warns = warnings_of(BASIC % "" + "virtual_server 10.0.0.1 80 {\n delay_loop 6\n}\n")
    assert any("virtual_server is keepalived's checker (LVS), not VRRP" in w for w in warns)


def test_nopreempt_with_state_master_is_cleared_like_keepalived() -> None:
    cfg = loads(BASIC % "nopreempt")
    assert not cfg.instances[0].nopreempt
    assert any("nopreempt will not work with initial state MASTER" in d.message for d in cfg.diagnostics)


def test_v2_rounds_sub_second_advert_int_and_v3_keeps_it() -> None:
    cfg = loads(BASIC.replace("advert_int 1", "advert_int 0.5") % "")
    assert cfg.instances[0].advert_int == 1.0
    cfg = loads(BASIC.replace("advert_int 1", "advert_int 0.1") % "version 3")
    assert cfg.instances[0].advert_interval_cs == 10


def test_ipv6_vips_use_version_3() -> None:
    cfg = loads(BASIC.replace("192.168.1.100/24", "2001:db8::100/64") % "")
    assert cfg.instances[0].version == 3 and cfg.instances[0].family == 6


def test_global_defaults_flow_into_instances() -> None:
    cfg = loads("global_defs {\n vrrp_version 3\n vrrp_garp_master_delay 2\n"
                " vrrp_garp_master_refresh 60\n notify_fifo /run/k.fifo\n}\n" + BASIC % "")
    inst = cfg.instances[0]
    assert (inst.version, inst.garp_master_delay, inst.garp_master_refresh) == (3, 2, 60)
    assert cfg.global_defs.notify_fifo == "/run/k.fifo"


def test_v3_drops_authentication_with_warning() -> None:
    cfg = loads(BASIC % "version 3\nauthentication {\n auth_type PASS\n auth_pass x\n }")
    assert cfg.instances[0].auth is None
