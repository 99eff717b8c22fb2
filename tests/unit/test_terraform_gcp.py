"""examples/terraform/gcp: parses (python-hcl2), creates the pair, lets VRRP in from the pair
only, grants the service account exactly the compute permissions the mode calls, keeps the VIP
out of Terraform's hands, renders a keepalived.conf cloudvip accepts; checkov finds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudvip.provider import load_checked

from ..terraform import checkov, checkov_failures, render, startup_script, unq
from ..terraform import blocks as tf_blocks

pytest.importorskip("hcl2")

TF = Path(__file__).resolve().parents[2] / "examples" / "terraform" / "gcp"


def resources() -> dict[str, dict[str, Any]]:
    return tf_blocks(TF, "resource")


def test_the_module_parses_and_creates_the_pair() -> None:
    res = resources()
    for name in ("google_compute_instance.node", "google_compute_network.pair", "google_compute_subnetwork.pair",
                 "google_compute_firewall.vrrp", "google_service_account.cloudvip",
                 "google_project_iam_custom_role.cloudvip", "google_project_iam_member.cloudvip"):
        assert name in res, name
    node = res["google_compute_instance.node"]
    assert node["for_each"] == "${local.nodes}"
    # the alias IP is cloudvip's: Terraform must not take it back after a failover
    assert node["lifecycle"][0]["ignore_changes"] == ["${network_interface[0].alias_ip_range}"]
    assert node["can_ip_forward"] == '${var.mode == "route"}'  # route mode only
    assert node["service_account"][0]["email"] == "${google_service_account.cloudvip.email}"


def test_vrrp_is_allowed_between_the_pair_only() -> None:
    fw = resources()["google_compute_firewall.vrrp"]
    assert fw["source_tags"] == fw["target_tags"] == ["${local.tag}"]
    assert [unq(a["protocol"]) for a in fw["allow"]] == ["112"]
    assert "source_ranges" not in fw


def test_the_custom_role_holds_exactly_what_each_mode_calls() -> None:
    import hcl2

    with open(TF / "main.tf") as fh:
        local = {k: v for entry in hcl2.load(fh)["locals"] for k, v in entry.items()}
    perms = {mode: {unq(p) for p in local["permissions"][mode]} for mode in ("alias_ip", "route")}
    assert perms["alias_ip"] == {"compute.instances.get", "compute.instances.list",
                                 "compute.instances.updateNetworkInterface", "compute.zoneOperations.get",
                                 "compute.subnetworks.use"}
    assert {"compute.routes.create", "compute.routes.delete", "compute.globalOperations.get"} <= perms["route"]
    assert not any(p.endswith((".setIamPolicy", ".delete")) and "routes" not in p for p in perms["route"])
    role = resources()["google_project_iam_custom_role.cloudvip"]
    assert role["permissions"] == "${local.permissions[var.mode]}"


@pytest.mark.parametrize("mode, vip, prefix", [("alias_ip", "10.10.0.100", "24"), ("route", "192.168.254.10", "32")])
def test_the_rendered_keepalived_conf_is_valid(mode: str, vip: str, prefix: str, tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render((TF / "keepalived.conf.tftpl").read_text(), router_id="cloudvip-web-a", group="web",
                           mode=mode, priority=100, self_ip="10.10.0.11", peer_ip="10.10.0.12", vip=vip,
                           prefix=prefix))
    cfg = load_checked(conf)
    inst = cfg.instances[0]
    assert inst.cloud is not None and inst.cloud.provider == "gcp"
    assert {e.key: e.values for e in inst.cloud.entries}["mode"] == (mode,)
    assert str(inst.vips[0].address) == vip and [str(p.address) for p in inst.unicast_peers] == ["10.10.0.12"]
    assert not [d for d in cfg.diagnostics if "unknown" in d.message]


def test_the_startup_script_installs_enables_and_logs_the_doctor() -> None:
    text = startup_script(pip_package="cloudvip[gcp]")
    assert "pip install -q 'cloudvip[gcp]'" in text and "systemctl enable --now cloudvip" in text
    assert text.index("cloudvip doctor -f /etc/keepalived/keepalived.conf") > text.index("enable --now cloudvip")


@pytest.mark.skipif(checkov() is None, reason="checkov not installed (make test installs it into .venv-checkov)")
def test_checkov_finds_nothing(tmp_path: Path) -> None:
    passed, failed, err = checkov_failures(TF, tmp_path)
    assert passed > 0, err
    assert failed == [], failed
