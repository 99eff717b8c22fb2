"""examples/terraform/hetzner: parses (python-hcl2), creates the pair, keeps the VIP out of
Terraform's hands, the token private, and renders a keepalived.conf cloudvip accepts.
(checkov 3.3 has no hcloud policies: it scans this module as 0 resources, so it is not run here.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudvip.provider import load_checked

from ..terraform import install_package, render, unq
from ..terraform import blocks as tf_blocks

pytest.importorskip("hcl2")

TF = Path(__file__).resolve().parents[2] / "examples" / "terraform" / "hetzner"


def resources() -> dict[str, dict[str, Any]]:
    return tf_blocks(TF, "resource")


def test_the_module_parses_and_creates_the_pair() -> None:
    res = resources()
    for name in ("hcloud_server.node", "hcloud_network.pair", "hcloud_network_subnet.pair",
                 "hcloud_server_network.node", "hcloud_floating_ip.vip", "hcloud_firewall.pair"):
        assert name in res, name
    assert res["hcloud_server.node"]["for_each"] == "${local.nodes}"
    assert res["hcloud_server.node"]["firewall_ids"] == ["${hcloud_firewall.pair.id}"]
    # the VIP is cloudvip's: Terraform must not put it back after a failover
    assert res["hcloud_floating_ip.vip"]["lifecycle"][0]["ignore_changes"] == ["server_id"]
    assert res["hcloud_server_network.node"]["lifecycle"][0]["ignore_changes"] == ["alias_ips"]
    assert "server_id" not in res["hcloud_floating_ip.vip"]


def test_the_firewall_opens_only_the_app() -> None:
    fw = resources()["hcloud_firewall.pair"]
    static = fw.get("rule", [])
    dynamic = [d[k]["content"][0] for d in fw.get("dynamic", []) for k in d]
    rules = static + dynamic
    assert {unq(r["direction"]) for r in rules} == {"in"}
    assert {unq(r["protocol"]) for r in rules} == {"tcp", "icmp"}  # nothing else reaches the public side


def test_agent_token_is_sensitive_and_written_0600() -> None:
    import hcl2

    with open(TF / "variables.tf") as fh:
        declared = {unq(k): v for entry in hcl2.load(fh)["variable"] for k, v in entry.items()}
    assert declared["agent_token"]["sensitive"] is True and declared["hcloud_token"]["sensitive"] is True
    cloud_init = render((TF / "cloud-init.yaml.tftpl").read_text(), agent_token="t0ken", keepalived_conf="x",
                        install_package=install_package(pip_package="cloudvip[hetzner]"))
    doc = yaml.safe_load(cloud_init)
    files = {f["path"]: f for f in doc["write_files"]}
    token = files["/etc/cloudvip/hcloud-token"]
    assert token["permissions"] == "0600" and token["content"] == "t0ken"
    assert "pip install -q 'cloudvip[hetzner]'" in files["/var/lib/cloud/cloudvip-install.sh"]["content"]
    install = next(i for i, c in enumerate(doc["runcmd"]) if c.endswith("sh -eu /var/lib/cloud/cloudvip-install.sh"))
    assert install < doc["runcmd"].index("cloudvip check-config -f /etc/keepalived/keepalived.conf")
    assert "meta skuid != 0 reject" in files["/etc/nftables.d/cloudvip-metadata.nft"]["content"]
    # the rule survives a reboot: Debian's nftables.service (enabled) loads nftables.conf, which includes it
    assert any("include \"/etc/nftables.d/*.nft\"' >> /etc/nftables.conf" in c for c in doc["runcmd"])
    assert "systemctl enable --now nftables" in doc["runcmd"]
    assert not any(c.startswith("nft -f") for c in doc["runcmd"])  # a one-off load would be gone after a reboot
    assert "systemctl enable --now cloudvip" in doc["runcmd"]
    assert "cloudvip check-config -f /etc/keepalived/keepalived.conf" in doc["runcmd"]
    doctor = next(i for i, c in enumerate(doc["runcmd"]) if c.startswith("cloudvip doctor"))
    assert doctor > doc["runcmd"].index("systemctl enable --now cloudvip") and doc["runcmd"][doctor].endswith("|| true")


@pytest.mark.parametrize("mode, vip_line, fip_line", [
    ("floating_ip", "203.0.113.200/32 dev eth0", "floating_ip 4711"),
    ("alias_ip", "10.0.1.100/32", ""),
])
def test_the_rendered_keepalived_conf_is_valid(mode: str, vip_line: str, fip_line: str, tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render((TF / "keepalived.conf.tftpl").read_text(), router_id="cloudvip-web-a",
                           private_interface="enp7s0", priority=100, self_ip="10.0.1.11", peer_ip="10.0.1.12",
                           mode=mode, vip_line=vip_line, floating_ip_line=fip_line, group="web"))
    cfg = load_checked(conf)
    inst = cfg.instances[0]
    assert inst.cloud is not None and inst.cloud.provider == "hetzner"
    entries = {e.key: e.values for e in inst.cloud.entries}
    assert entries["mode"] == (mode,) and entries["token_file"] == ("/etc/cloudvip/hcloud-token",)
    assert [str(p.address) for p in inst.unicast_peers] == ["10.0.1.12"]
    assert str(inst.vips[0].address) == vip_line.split("/")[0]
    assert not [d for d in cfg.diagnostics if "unknown" in d.message]
