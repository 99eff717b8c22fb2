"""examples/terraform/azure: parses (python-hcl2), creates the pair, lets VRRP in from the pair
only, grants the managed identities exactly the actions the mode calls on the resource group,
keeps the route and the secondary IP configuration out of Terraform's hands, turns IP forwarding
on in route mode, renders a keepalived.conf cloudvip accepts; checkov finds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudvip.provider import load_checked

from ..terraform import checkov, checkov_failures, render, startup_script, unq
from ..terraform import blocks as tf_blocks

pytest.importorskip("hcl2")

TF = Path(__file__).resolve().parents[2] / "examples" / "terraform" / "azure"


def resources() -> dict[str, dict[str, Any]]:
    return tf_blocks(TF, "resource")


def test_the_module_parses_and_creates_the_pair() -> None:
    res = resources()
    for name in ("azurerm_linux_virtual_machine.node", "azurerm_network_interface.node", "azurerm_route_table.vip",
                 "azurerm_network_security_group.pair", "azurerm_role_definition.cloudvip",
                 "azurerm_role_assignment.node", "azurerm_subnet_route_table_association.pair"):
        assert name in res, name
    vm = res["azurerm_linux_virtual_machine.node"]
    assert unq(vm["identity"][0]["type"]) == "SystemAssigned"
    assert vm["disable_password_authentication"] is True and vm["allow_extension_operations"] is False
    nic = res["azurerm_network_interface.node"]
    assert nic["ip_forwarding_enabled"] == '${var.mode == "route_table"}'  # route mode only
    # what cloudvip writes is not Terraform's: a secondary IP configuration, the VIP's route
    assert nic["lifecycle"][0]["ignore_changes"] == ["ip_configuration"]
    assert res["azurerm_route_table.vip"]["lifecycle"][0]["ignore_changes"] == ["route"]
    assert "route" not in res["azurerm_route_table.vip"]


def test_vrrp_is_allowed_between_the_pair_only() -> None:
    rules = {unq(r["name"]): r for r in resources()["azurerm_network_security_group.pair"]["security_rule"]}
    vrrp = rules["vrrp-between-the-pair"]
    # an NSG cannot name protocol 112: "*", but from and to the pair's two addresses only
    assert unq(vrrp["protocol"]) == "*" and unq(vrrp["access"]) == "Allow"
    assert vrrp["source_address_prefixes"] == vrrp["destination_address_prefixes"] == \
        "${[for n in local.nodes : n.ip]}"
    deny = rules["no-other-vnet-traffic"]
    assert unq(deny["access"]) == "Deny" and unq(deny["source_address_prefix"]) == "VirtualNetwork"
    assert vrrp["priority"] < rules["app-from-clients"]["priority"] < deny["priority"] < 65000  # AllowVnetInBound


def test_the_role_holds_exactly_what_each_mode_calls_on_the_resource_group() -> None:
    import hcl2

    with open(TF / "main.tf") as fh:
        local = {k: v for entry in hcl2.load(fh)["locals"] for k, v in entry.items()}
    actions = {mode: {unq(a) for a in local["actions"][mode]} for mode in ("route_table", "ip_config")}
    assert actions["route_table"] == {
        "Microsoft.Network/routeTables/read", "Microsoft.Network/routeTables/routes/read",
        "Microsoft.Network/routeTables/routes/write", "Microsoft.Network/networkInterfaces/read",
        "Microsoft.Network/locations/operations/read", "Microsoft.Compute/virtualMachines/read"}
    assert actions["ip_config"] == {
        "Microsoft.Network/networkInterfaces/read", "Microsoft.Network/networkInterfaces/write",
        "Microsoft.Network/virtualNetworks/subnets/join/action", "Microsoft.Network/locations/operations/read",
        "Microsoft.Compute/virtualMachines/read"}
    assert not any("*" in a or a.endswith("/delete") for mode in actions.values() for a in mode)
    res = resources()
    role = res["azurerm_role_definition.cloudvip"]
    assert role["permissions"][0]["actions"] == "${local.actions[var.mode]}"
    assert role["assignable_scopes"] == ["${azurerm_resource_group.pair.id}"]
    assert res["azurerm_role_assignment.node"]["scope"] == "${azurerm_resource_group.pair.id}"


@pytest.mark.parametrize("mode, vip, prefix, table", [("route_table", "192.168.254.10", "32", "cloudvip-web"),
                                                      ("ip_config", "10.20.1.100", "24", "")])
def test_the_rendered_keepalived_conf_is_valid(mode: str, vip: str, prefix: str, table: str, tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render((TF / "keepalived.conf.tftpl").read_text(), router_id="cloudvip-web-a", group="web",
                           mode=mode, priority=100, self_ip="10.20.1.11", peer_ip="10.20.1.12", vip=vip,
                           prefix=prefix, route_table=table))
    cfg = load_checked(conf)
    inst = cfg.instances[0]
    assert inst.cloud is not None and inst.cloud.provider == "azure"
    entries = {e.key: e.values for e in inst.cloud.entries}
    assert entries["mode"] == (mode,)
    assert entries.get("route_tables") == ((table,) if table else None)
    assert str(inst.vips[0].address) == vip and [str(p.address) for p in inst.unicast_peers] == ["10.20.1.12"]
    assert not [d for d in cfg.diagnostics if "unknown" in d.message]


def test_the_custom_data_installs_the_azure_extra_and_logs_the_doctor() -> None:
    text = startup_script(pip_package="cloudvip[azure]")
    assert "pip install -q 'cloudvip[azure]'" in text and "systemctl enable --now cloudvip" in text
    assert "cloudvip[azure]" in (TF / "variables.tf").read_text()


@pytest.mark.skipif(checkov() is None, reason="checkov not installed (make test installs it into .venv-checkov)")
def test_checkov_finds_nothing(tmp_path: Path) -> None:
    passed, failed, err = checkov_failures(TF, tmp_path)
    assert passed > 0, err
    assert failed == [], failed
