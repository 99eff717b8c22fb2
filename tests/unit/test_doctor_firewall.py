"""The firewall walk of `cloudvip doctor` on rulesets dumped by the real nft 1.0.6 and
iptables-save 1.8.9 (tests/data/firewall, made in a throw-away namespace)."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from cloudvip.doctor.firewall import Outcome, Packet, host_rulesets, judge, parse_iptables_save, parse_nft

DATA = Path(__file__).parent.parent / "data" / "firewall"


def vrrp_in(src: str, dst: str = "10.0.0.1", ifname: str = "eth0") -> Packet:
    return Packet("input", 112, ip_address(src), ip_address(dst), ifname)


@pytest.fixture(scope="module")
def nft() -> list:
    return parse_nft((DATA / "nft-mixed.json").read_text())


@pytest.mark.parametrize("src, outcome, where", [
    ("10.0.0.2", Outcome.ACCEPT, ""),  # ip saddr 10.0.0.0/24 meta l4proto vrrp accept
    ("10.1.0.2", Outcome.DROP, "rule handle"),  # ip protocol 112 ip saddr { ... } counter drop
    ("10.2.3.4", Outcome.ACCEPT, ""),  # accepted in the jumped-to chain
])
def test_nft_input_verdicts(nft: list, src: str, outcome: Outcome, where: str) -> None:
    v = judge(nft, vrrp_in(src))
    assert v.outcome is outcome and where in v.where


def test_an_unknown_accept_is_not_trusted_the_policy_drops(nft: list) -> None:
    """`meta mark 0x1 accept` cannot be judged: the packet counts as not matching it, and the
    input policy drop is what it meets."""
    v = judge(nft, vrrp_in("10.5.0.1"))
    assert v.outcome is Outcome.DROP and "policy drop" in v.where


def test_nft_output_metadata_reject_and_a_named_set(nft: list) -> None:
    md = Packet("output", 6, ip_address("10.0.0.1"), ip_address("169.254.169.254"), "eth0", 80)
    assert judge(nft, md).outcome is Outcome.DROP
    other_port = Packet("output", 6, ip_address("10.0.0.1"), ip_address("169.254.169.254"), "eth0", 443)
    assert judge(nft, other_port).outcome is Outcome.ACCEPT
    # `ip daddr @blocked drop`: a named set we do not read: may drop
    advert = Packet("output", 112, ip_address("10.0.0.1"), ip_address("10.9.9.9"), "eth0")
    assert judge(nft, advert).outcome is Outcome.MAYBE


def test_an_ipv6_packet_passes_an_ip_family_table() -> None:
    rs = parse_iptables_save((DATA / "iptables-drop-policy.txt").read_text(), "ip")
    assert judge([rs], Packet("input", 112, ip_address("fe80::2"), ip_address("fe80::1"), "eth0")).outcome \
        is Outcome.ACCEPT


@pytest.mark.parametrize("src, ifname, outcome", [
    ("10.0.0.2", "eth0", Outcome.ACCEPT),
    ("10.0.0.3", "eth0", Outcome.DROP),  # INPUT policy DROP
    ("10.3.1.1", "eth1", Outcome.ACCEPT),  # -i eth1 -j VRRP, accepted there
    ("10.3.1.1", "eth0", Outcome.DROP),
])
def test_iptables_save(src: str, ifname: str, outcome: Outcome) -> None:
    rs = parse_iptables_save((DATA / "iptables-drop-policy.txt").read_text())
    v = judge([rs], vrrp_in(src, ifname=ifname))
    assert v.outcome is outcome
    if outcome is Outcome.DROP:
        assert v.where == "iptables chain INPUT policy DROP"


def test_iptables_output_drop_names_the_rule() -> None:
    rs = parse_iptables_save((DATA / "iptables-drop-policy.txt").read_text())
    v = judge([rs], Packet("output", 6, ip_address("10.0.0.1"), ip_address("169.254.169.254"), "eth0", 80))
    assert v.outcome is Outcome.DROP and "--dport 80 -j DROP" in v.where


def test_iptables_nft_rules_are_judged_once_from_iptables_save() -> None:
    """With iptables-nft the same rules show in `nft list ruleset` (the conntrack match as an
    opaque xt expression): only iptables-save's reading of them counts."""
    outputs = {"nft": (DATA / "nft-from-iptables.json").read_text(),
               "iptables-save": (DATA / "iptables-drop-policy.txt").read_text(), "ip6tables-save": ""}
    rulesets, problems = host_rulesets(lambda argv: outputs[argv[0]])
    assert problems == []
    assert [rs.source for rs in rulesets] == ["iptables"]
    assert judge(rulesets, vrrp_in("10.0.0.2")).outcome is Outcome.ACCEPT


def test_a_ruleset_that_cannot_be_read_is_said() -> None:
    rulesets, problems = host_rulesets(lambda argv: None)
    assert rulesets == [] and any("root" in p for p in problems)


def test_the_hetzner_examples_metadata_rule_lets_root_through_only() -> None:
    """examples/terraform/hetzner: only root may ask the metadata service (the user data holds
    the token); doctor and the agent run as root."""
    rules = parse_nft((DATA / "nft-hetzner-metadata.json").read_text())
    md = dict(hook="output", proto=6, saddr=ip_address("10.0.0.1"), daddr=ip_address("169.254.169.254"),
              ifname="eth0", dport=80)
    assert judge(rules, Packet(**md, uid=0)).outcome is Outcome.ACCEPT
    assert judge(rules, Packet(**md, uid=1000)).outcome is Outcome.DROP


def test_a_rule_on_another_transport_header_does_not_match_vrrp() -> None:
    """`icmp type echo-request drop` says nothing about VRRP: no `maybe` from it."""
    ruleset = {"nftables": [
        {"chain": {"family": "inet", "table": "f", "name": "input", "type": "filter", "hook": "input", "prio": 0,
                   "policy": "accept"}},
        {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 2, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "type"}},
                       "right": "echo-request"}}, {"drop": None}]}}]}
    import json

    assert judge(parse_nft(json.dumps(ruleset)), vrrp_in("10.0.0.2")).outcome is Outcome.ACCEPT
