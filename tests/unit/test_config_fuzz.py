"""The config parser under random input: it returns a Config or raises ConfigError with
file:line diagnostics, never anything else (hypothesis, like the packet decoder)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudvip.config import Config, ConfigError, loads

WORDS = ["global_defs", "router_id", "vrrp_instance", "VI_1", "state", "MASTER", "BACKUP", "interface", "eth0",
         "virtual_router_id", "51", "priority", "100", "255", "0", "-1", "advert_int", "0.1", "version", "3",
         "authentication", "auth_type", "PASS", "auth_pass", "unicast_src_ip", "unicast_peer", "10.0.0.1",
         "2001:db8::1", "virtual_ipaddress", "10.0.0.100/24", "dev", "label", "track_script", "vrrp_script",
         "chk", "script", "\"/bin/true\"", "interval", "weight", "fall", "rise", "track_interface", "track_file",
         "notify_master", "notify", "vrrp_sync_group", "group", "nopreempt", "preempt_delay", "cloud", "aws",
         "hetzner", "mode", "secondary_ip", "floating_ip", "auth_key_file", "/k", "@node1", "@^node1", "$VAR",
         "$VAR=x", "{", "}", "{", "}", "#", "!", "\"", "'", "\\", "\t", "é", "\x00"]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=60),
       st.lists(st.sampled_from([" ", "\n", "\n\n", " \n"]), min_size=60, max_size=60))
def test_random_configs_parse_or_fail_cleanly(words: list[str], seps: list[str]) -> None:
    text = "".join(w + sep for w, sep in zip(words, seps, strict=False))
    try:
        cfg = loads(text, "fuzz.conf")
    except ConfigError as exc:
        assert exc.diagnostics and all(str(d).startswith("fuzz.conf") for d in exc.diagnostics)
    else:
        assert isinstance(cfg, Config)
