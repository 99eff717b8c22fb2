"""The doctor's report: the table a person reads (marks, fixes under ✘ and !), JSON, exit code;
and what listening concludes from who was heard."""

from __future__ import annotations

import json
from ipaddress import ip_address

from cloudvip.config import loads
from cloudvip.doctor.findings import Status, exit_code, fail, ok, render, to_json, warn
from cloudvip.doctor.listen import Heard, peer_findings
from cloudvip.packet import Advertisement
from cloudvip.transport import Received

CONF = """vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    advert_int 1
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
        10.0.0.3
    }
    virtual_ipaddress {
        10.0.0.100/24
    }
}
"""


def test_table_marks_fixes_and_counts() -> None:
    findings = [ok("host", "clock", "synchronised"), warn("VI_1", "peer", "heard a stranger", "add it"),
                fail("VI_1", "firewall in", "adverts DROPPED", "nft insert rule inet f input accept")]
    text = render(findings)
    lines = text.splitlines()
    assert lines[0].startswith("✔ host  clock") and lines[1].startswith("! VI_1  peer")
    assert lines[2].strip() == "fix: add it"
    assert lines[3].startswith("✘ VI_1  firewall in") and lines[4].strip() == "fix: nft insert rule inet f input accept"
    assert lines[-1] == "1 ok, 1 warning(s), 1 failed"
    assert "fix:" not in render([ok("host", "x", "y")])
    assert exit_code(findings) == 1 and exit_code(findings[:2]) == 0
    data = json.loads(to_json(findings))
    assert data["ok"] is False and data["findings"][2] == {
        "scope": "VI_1", "check": "firewall in", "status": "fail", "found": "adverts DROPPED",
        "fix": "nft insert rule inet f input accept"}


def heard(inst: object, *sources: tuple[str, int]) -> Heard:
    h = Heard(inst)  # type: ignore[arg-type]
    for src, prio in sources:
        adv = Advertisement(2, 51, prio, (ip_address("10.0.0.100"),), 100)
        h.record(Received(adv, ip_address(src), ip_address("10.0.0.1"), 255))
    return h


def peers_of(inst: object) -> list:
    return [p.address for p in inst.unicast_peers]  # type: ignore[attr-defined]


def test_a_master_heard_makes_the_silent_backups_normal() -> None:
    inst = loads(CONF).instances[0]
    out = peer_findings(heard(inst, ("10.0.0.2", 150)), peers_of(inst), None, False)
    assert [f.status for f in out] == [Status.OK, Status.OK]
    assert "10.0.0.3 silent" in out[1].found


def test_nobody_heard_without_a_local_master_fails_with_what_to_check() -> None:
    inst = loads(CONF).instances[0]
    out = peer_findings(heard(inst), peers_of(inst), None, False)
    assert [f.status for f in out] == [Status.FAIL] and "protocol 112" in out[0].fix
    assert [f.status for f in peer_findings(heard(inst), peers_of(inst), "MASTER", True)] == [Status.OK]


def test_a_stranger_a_split_brain_and_a_vip_carried_beside_a_master() -> None:
    inst = loads(CONF).instances[0]
    out = peer_findings(heard(inst, ("10.0.0.9", 100)), peers_of(inst), None, False)
    assert out[0].status is Status.WARN and "NOT a configured peer" in out[0].found
    split = peer_findings(heard(inst, ("10.0.0.2", 150)), peers_of(inst), "MASTER", True)
    assert [f.check for f in split if f.status is Status.FAIL] == ["split brain"]
    carried = peer_findings(heard(inst, ("10.0.0.2", 150)), peers_of(inst), "BACKUP", True)
    assert [f.check for f in carried if f.status is Status.FAIL] == ["vip"]
    assert "ip addr del 10.0.0.100/24 dev eth0" in carried[-1].fix
