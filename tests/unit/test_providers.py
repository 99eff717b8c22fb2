"""Provider plugins are found through the entry-point group; config checks go through them."""

from __future__ import annotations

from cloudvip.config import loads, settings_key
from cloudvip.provider import available_providers, check_providers, load_provider, provider_name
from cloudvip_providers.linux import LinuxProvider

BASIC = """vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress { 10.0.0.1/24 }
    %s
}
"""


def test_linux_provider_is_registered() -> None:
    assert available_providers()["linux"] == "cloudvip_providers.linux:LinuxProvider"
    assert load_provider("linux") is LinuxProvider


def test_instances_without_cloud_block_use_linux() -> None:
    inst = loads(BASIC % "").instances[0]
    assert provider_name(inst) == "linux" and check_providers((inst,)) == []


def test_unknown_provider_is_a_config_error_at_the_cloud_block() -> None:
    inst = loads(BASIC % "cloud nosuchcloud {\n}", "k.conf").instances[0]
    diags = check_providers((inst,))
    assert [str(d) for d in diags] == [
        "k.conf:5: unknown cloud provider 'nosuchcloud' (installed: " + ", ".join(sorted(available_providers())) + ")"]


def test_settings_key_ignores_locations_but_not_values() -> None:
    a = loads(BASIC % "", "a.conf").instances[0]
    b = loads("\n\n" + BASIC % "", "b.conf").instances[0]
    c = loads(BASIC.replace("10.0.0.1", "10.0.0.2") % "", "a.conf").instances[0]
    assert a.loc != b.loc and settings_key(a) == settings_key(b)
    assert settings_key(a) != settings_key(c)
