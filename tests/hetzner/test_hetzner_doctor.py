"""`cloudvip doctor` on Hetzner against the local API: a clean world gives no ✘; a read-only
token, a floating IP in another zone, an alias VIP used by a stranger, a bad token are found
and come with their fix; nothing is changed."""

from __future__ import annotations

from pathlib import Path

from cloudvip.doctor.findings import Finding, Status
from cloudvip_lab.hcloud_emulator import HetznerWorld

from ..fake_host import doctor_findings, failed
from .test_hetzner_provider import provider


def doctor(hz: HetznerWorld, token_file: str, mode: str = "floating_ip", extra: str = "") -> list[Finding]:
    return doctor_findings(provider(hz, 0, token_file, mode, extra=extra)[0])


def by_check(findings: list[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


def test_a_clean_floating_ip_setup_passes_and_changes_nothing(hz: HetznerWorld, token_file: str) -> None:
    findings = doctor(hz, token_file)
    assert failed(findings) == []
    assert all(f.status is Status.OK for f in findings), findings
    token = by_check(findings, "token").found
    assert "requests left this hour" in token and "~240/h (2 nodes, a read every 30 s each)" in token
    assert "read-write" in by_check(findings, "token write").found
    assert "homed in fsn1 (eu-central), like this server" in by_check(findings, "floating ip").found
    assert hz.emulator.writes() == {} and hz.holder_ids("floating_ip") == []


def test_a_read_only_token_is_found_without_a_change(hz: HetznerWorld, token_file: str, tmp_path: Path) -> None:
    hz.emulator.read_only_tokens.add("read-only-token")
    ro = tmp_path / "ro-token"
    ro.write_text("read-only-token\n")
    ro.chmod(0o600)
    f = failed(doctor(hz, str(ro)))
    assert [x.check for x in f] == ["token write"]
    assert "read-only" in f[0].found and "Read & Write" in f[0].fix
    assert hz.emulator.floating_ips[hz.floating_ip.id].name == ""  # the empty update changed nothing


def test_a_floating_ip_in_another_network_zone_fails_in_another_location_warns(
        hz: HetznerWorld, token_file: str) -> None:
    hz.emulator.floating_ips[hz.floating_ip.id].home_location = "ash"
    f = failed(doctor(hz, token_file))
    assert [x.check for x in f] == ["floating ip"]
    assert "homed in ash (us-east)" in f[0].found and "--home-location fsn1" in f[0].fix
    hz.emulator.floating_ips[hz.floating_ip.id].home_location = "nbg1"
    findings = doctor(hz, token_file)
    assert failed(findings) == [] and by_check(findings, "floating ip").status is Status.WARN


def test_an_alias_vip_used_by_a_stranger(hz: HetznerWorld, token_file: str) -> None:
    assert failed(doctor(hz, token_file, "alias_ip")) == []
    stranger = hz.emulator.add_server("stranger", "198.51.100.50")
    hz.emulator.attach(stranger, hz.network, "198.51.100.50")
    stranger.private[hz.network] = ("198.51.100.50", ["198.51.100.100"])
    f = failed(doctor(hz, token_file, "alias_ip"))
    assert len(f) == 1 and "used by server stranger" in f[0].found and "change-alias-ips" in f[0].fix


def test_a_bad_token_says_so_first(hz: HetznerWorld, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("not-the-token\n")
    bad.chmod(0o600)
    f = failed(doctor(hz, str(bad)))
    assert f[0].check == "token" and "401" in f[0].found


def test_the_budget_warns_when_the_config_would_spend_most_of_it(hz: HetznerWorld, token_file: str) -> None:
    t = by_check(doctor(hz, token_file, extra="        reconcile_interval 5\n"), "token")
    assert t.status is Status.WARN and "~1440/h" in t.found and "reconcile_interval" in t.fix


def test_peers_found_by_label_are_counted_and_are_no_strangers(hz: HetznerWorld, token_file: str) -> None:
    """No unicast_peer: peer_label finds node2, whose alias IP is then a peer's, not a stranger's."""
    hz.servers[1].private[hz.network] = ("198.51.100.12", ["198.51.100.100"])
    p, _ = provider(hz, 0, token_file, "alias_ip", peer=False, extra="        peer_label cloudvip-group=lab\n")
    findings = doctor_findings(p)
    assert failed(findings) == []
    assert by_check(findings, "peer discovery").found == "found 198.51.100.12"
    assert "(2 nodes" in by_check(findings, "token").found
