"""keepalived 2.4's auth_hmac: the trailer, its checks and modes, sequences across clock steps
and restarts, and the config block (the wire format against keepalived 2.4.3 itself:
tests/netns/test_auth_hmac_interop.py)."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudvip import auth_state
from cloudvip.auth_hmac import TRAILER_LEN, AuthHmac, Mode, Verifier, derived_window, sign, split
from cloudvip.config import ConfigError, loads
from cloudvip.packet import Advertisement, decode, encode
from cloudvip.provider import ProviderError
from cloudvip.transport import _received
from cloudvip_providers.hetzner import read_token

SRC, DST = IPv4Address("198.51.100.11"), IPv4Address("198.51.100.12")
K1, K2 = bytes(range(32)), bytes(range(100, 148))
NOW = 1_800_000_000 * 10**9
S = 10**9  # one second in ns
CFG = AuthHmac(((1, K1),), 1, time_window=5)


def vrrp(version: int = 3) -> bytes:
    return encode(Advertisement(version=version, vrid=51, priority=100, interval_cs=100,
                                addresses=(IPv4Address("198.51.100.100"),)), SRC, DST)


def signed(cfg: AuthHmac, data: bytes, at: int, sender: Verifier | None = None) -> bytes:
    return sign(cfg, SRC, data, (sender or Verifier(cfg)).next_sequence(at))


@pytest.mark.parametrize("version", [2, 3])
def test_a_signed_advert_verifies_once(version: int) -> None:
    data = vrrp(version)
    sender, receiver = Verifier(CFG), Verifier(CFG)
    trailer = signed(CFG, data, NOW, sender)
    assert len(trailer) == TRAILER_LEN == 28 and trailer[:4] == b"\x01\x01\x00\x00"
    assert receiver.check(SRC, data, trailer, NOW) is None
    assert receiver.check(SRC, data, trailer, NOW) == "auth_ext_replay"
    assert receiver.check(SRC, data, signed(CFG, data, NOW + S // 10, sender), NOW + S // 10) is None


def test_the_hmac_skips_the_checksum_and_covers_the_rest() -> None:
    """Unicast copies of one advert differ in their checksum only: one HMAC serves them all."""
    data = vrrp()
    seq = Verifier(CFG).next_sequence(NOW)
    other_copy = data[:6] + b"\xab\xcd" + data[8:]
    assert sign(CFG, SRC, data, seq) == sign(CFG, SRC, other_copy, seq)
    assert sign(CFG, SRC, data[:-1] + bytes([data[-1] ^ 1]), seq) != sign(CFG, SRC, data, seq)


@pytest.mark.parametrize("case, reason", [
    ("wrong key", "auth_ext_invalid_hmac"), ("unknown id", "auth_ext_unknown_key"),
    ("tampered", "auth_ext_invalid_hmac"), ("other source", "auth_ext_invalid_hmac"),
    ("missing", "auth_ext_missing"), ("stale", "auth_ext_stale"), ("from the future", "auth_ext_stale"),
    ("ext type", "auth_ext_malformed"), ("reserved", "auth_ext_malformed"),
])
def test_bad_adverts_are_dropped_with_keepalived_s_reason(case: str, reason: str) -> None:
    data = vrrp()
    signer = {"wrong key": replace(CFG, keys=((1, K2),)), "unknown id": AuthHmac(((7, K1),), 7)}.get(case, CFG)
    at = NOW + {"stale": -6 * S, "from the future": 6 * S}.get(case, 0)
    trailer: bytes | None = signed(signer, data, at)
    src, body = SRC, data
    if case == "tampered":
        body = data[:-1] + bytes([data[-1] ^ 1])
    elif case == "other source":
        src = DST
    elif case == "missing":
        trailer = None
    elif case in ("ext type", "reserved"):
        assert trailer is not None
        trailer = (b"\x02" + trailer[1:]) if case == "ext type" else trailer[:3] + b"\x01" + trailer[4:]
    assert Verifier(CFG).check(src, body, trailer, NOW) == reason


@pytest.mark.parametrize("mode, sends, takes_plain", [(Mode.ENFORCE, True, False), (Mode.PERMISSIVE, True, True),
                                                      (Mode.RECEIVE_ONLY, False, True)])
def test_rollout_modes(mode: Mode, sends: bool, takes_plain: bool) -> None:
    cfg = replace(CFG, mode=mode)
    v = Verifier(cfg)
    assert cfg.sends is sends
    assert (v.check(SRC, vrrp(), None, NOW) is None) is takes_plain
    assert v.check(SRC, vrrp(), signed(CFG, vrrp(), NOW), NOW) is None  # a trailer is checked in every mode
    assert v.check(SRC, vrrp(), signed(replace(CFG, keys=((1, K2),)), vrrp(), NOW), NOW) == "auth_ext_invalid_hmac"


def test_monotonic_anti_replay_ignores_the_clocks_but_not_the_order() -> None:
    cfg = replace(CFG, anti_replay_time=False)
    v, sender = Verifier(cfg), Verifier(cfg)
    old = signed(cfg, vrrp(), NOW - 3600 * S, sender)
    assert v.check(SRC, vrrp(), old, NOW) is None  # an hour off: no freshness window in this mode
    assert v.check(SRC, vrrp(), old, NOW) == "auth_ext_replay"


def test_rotation_accepts_every_configured_key_and_signs_with_the_active_one() -> None:
    during = AuthHmac(((1, K1), (2, K2)), 2, time_window=5)
    v = Verifier(during)
    assert v.check(SRC, vrrp(), signed(CFG, vrrp(), NOW), NOW) is None
    assert v.check(SRC, vrrp(), signed(during, vrrp(), NOW + S // 10), NOW + S // 10) is None
    assert signed(during, vrrp(), NOW)[1] == 2


def test_multicast_remembers_four_senders_the_least_recently_used_goes() -> None:
    v = Verifier(CFG, unicast=False)
    senders = [IPv4Address(f"198.51.100.{20 + i}") for i in range(5)]
    captured = {}
    for i, src in enumerate(senders):
        captured[src] = sign(CFG, src, vrrp(), Verifier(CFG).next_sequence(NOW + i))
        assert v.check(src, vrrp(), captured[src], NOW + i) is None
    assert len(v.last) == 4 and senders[0] not in v.last
    assert v.check(senders[4], vrrp(), captured[senders[4]], NOW + 10) == "auth_ext_replay"


def test_a_sender_whose_clock_steps_back_is_not_taken_for_a_replay() -> None:
    """The sender's clock jumps back 2 s (inside the window): its sequence goes on from the last
    one, so the receiver (whose clock did not move) accepts every advert: no failover."""
    sender, receiver = Verifier(CFG), Verifier(CFG)
    data = vrrp()
    for i in range(40):  # 0.1 s adverts; the step after the 10th
        sender_clock = NOW + i * S // 10 - (2 * S if i >= 10 else 0)
        assert receiver.check(SRC, data, signed(CFG, data, sender_clock, sender), NOW + i * S // 10) is None, i


def test_a_sequence_stranded_beyond_the_window_restarts_from_the_clock() -> None:
    sender = Verifier(CFG)
    first = sender.next_sequence(NOW)
    assert sender.next_sequence(NOW - 60 * S) == (((NOW - 60 * S) // S) << 32)  # as keepalived: back to the clock
    assert first > sender.sent


def test_an_advert_captured_before_a_receiver_restart_is_a_replay_after_it(tmp_path: Path) -> None:
    data = vrrp()
    sender, receiver = Verifier(CFG), Verifier(CFG)
    captured = signed(CFG, data, NOW, sender)
    assert receiver.check(SRC, data, captured, NOW) is None
    assert receiver.check(SRC, data, signed(CFG, data, NOW + S // 10, sender), NOW + S // 10) is None
    state = auth_state.state_path("/etc/keepalived/keepalived.conf", "VI_1", tmp_path)
    auth_state.save(state, receiver.sent, receiver.last)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600 and stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    restarted = Verifier(CFG)
    restarted.sent, restarted.last = auth_state.load(state)
    assert restarted.check(SRC, data, captured, NOW + S // 5) == "auth_ext_replay"  # within the window, yet old
    assert restarted.check(SRC, data, signed(CFG, data, NOW + S // 5, sender), NOW + S // 5) is None


def test_unreadable_auth_state_starts_empty(tmp_path: Path) -> None:
    bad = tmp_path / "auth.json"
    bad.write_text("{not json")
    assert auth_state.load(bad) == (0, {})
    assert auth_state.load(tmp_path / "missing.json") == (0, {})


def test_the_trailer_is_found_by_length() -> None:
    data = vrrp()
    rx = _received(data + signed(CFG, data, NOW), SRC, DST, 255)
    assert (rx.vrrp, rx.trailer is not None, rx.advert.priority) == (data, True, 100)
    plain = _received(data, SRC, DST, 255)
    assert plain.trailer is None and plain.vrrp == data
    assert split(data + b"\0" * 27, False) == (data + b"\0" * 27, None)


@given(st.binary(min_size=0, max_size=120))
def test_garbage_trailers_never_raise(junk: bytes) -> None:
    data = vrrp()
    reason = Verifier(CFG).check(SRC, data, junk.ljust(TRAILER_LEN, b"\0")[:TRAILER_LEN], NOW)
    assert reason in ("auth_ext_malformed", "auth_ext_stale", "auth_ext_unknown_key", "auth_ext_invalid_hmac")
    assert decode(data, SRC, DST).vrid == 51


# ---------- the config block ----------

def instance(body: str, top: str = "") -> str:
    return (f"{top}vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    advert_int 3\n{body}"
            "    virtual_ipaddress {\n        192.0.2.10\n    }\n}\n")


def test_the_auth_hmac_block(tmp_path: Path) -> None:
    key_file = tmp_path / "vrrp10"
    key_file.write_text("hex:" + K2.hex() + "\n")
    key_file.chmod(0o600)
    block = (f"    auth_hmac {{\n        key 1 hex:{K1.hex()}\n        key 2 file:{key_file}\n"
             f"        key 3 {'x' * 40}\n        active_key 2\n        mode permissive\n    }}\n")
    cfg = loads(instance(block), "k.conf")
    ah = cfg.instances[0].auth_hmac
    assert ah is not None and ah.keys == ((1, K1), (2, K2), (3, b"x" * 40)) and ah.active_key == 2
    assert ah.mode is Mode.PERMISSIVE and ah.anti_replay_time and ah.time_window == 9  # 3 x advert_int 3
    assert K1.hex() not in repr(ah)  # keys never reach a log line
    assert derived_window(0.1) == 5 and derived_window(200) == 300


@pytest.mark.parametrize("block, message", [
    ("key 1 hex:0011\n active_key 1", "k.conf:6: auth_hmac key 1 is 2 bytes long (expected 32..64 bytes)"),
    (f"key 1 hex:{K1.hex()}", "auth_hmac active_key (none) is not defined: keepalived would run this instance "
                              "without authentication"),
    (f"key 1 hex:{K1.hex()}\n active_key 2", "active_key 2 is not defined"),
    (f"key 1 hex:{K1.hex()}\n key 1 hex:{K2.hex()}\n active_key 1", "duplicate auth_hmac key id 1"),
    (f"key 1 hex:{K1.hex()}\n active_key 1\n mode strict", "auth_hmac mode 'strict' is not valid"),
    (f"key 1 hex:{K1.hex()}\n active_key 1\n anti_replay clock", "anti_replay 'clock' is not valid"),
    (f"key 1 hex:{K1.hex()}\n active_key 1\n time_window 301", "time_window 301 is out of range"),
    ("key 1 file:/nonexistent/key\n active_key 1", "auth_hmac key file"),
])
def test_auth_hmac_errors_refuse_the_file_on_the_line(block: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loads(instance(f"    auth_hmac {{\n {block}\n    }}\n"), "k.conf")
    assert any(message in str(d) for d in exc.value.diagnostics), exc.value.diagnostics


def test_auth_hmac_beside_the_rest_as_keepalived_has_it() -> None:
    block = f"    auth_hmac {{\n        key 1 hex:{K1.hex()}\n        active_key 1\n        mode receive-only\n    }}\n"
    legacy = "    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n"
    cfg = loads(instance(legacy + block, top="global_defs {\n    vrrp_strict\n}\n"), "k.conf")
    inst = cfg.instances[0]
    assert inst.auth is None and inst.auth_hmac is not None and inst.auth_hmac.mode is Mode.ENFORCE
    text = "\n".join(str(d) for d in cfg.diagnostics)
    assert "strict mode requires auth_hmac mode enforce" in text
    plain = loads(instance(legacy + block), "k.conf")
    assert plain.instances[0].auth is None and "cannot be combined with authentication" in str(plain.diagnostics)


def test_auth_key_file_is_a_deprecated_spelling_of_auth_hmac(tmp_path: Path) -> None:
    path = tmp_path / "vrrp.keys"
    path.write_text(f"# rotated 2026-11\n3 {K1.hex()}  # current\n1 {K2.hex()}\n")
    path.chmod(0o600)
    cfg = loads(instance(f"    auth_key_file {path}\n"), "k.conf")
    ah = cfg.instances[0].auth_hmac
    assert ah is not None and ah.active_key == 3 and dict(ah.keys) == {3: K1, 1: K2} and ah.mode is Mode.ENFORCE
    assert any("auth_key_file is deprecated" in str(d) for d in cfg.diagnostics)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        loads(instance(f"    auth_key_file {path}\n"), "k.conf")
    path.write_text("1 abcd\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"vrrp.keys:1: not a new `ID HEX` line"):
        loads(instance(f"    auth_key_file {path}\n"), "k.conf")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the file to another owner needs root")
def test_a_key_file_someone_else_owns_is_refused(tmp_path: Path) -> None:
    """Its owner could replace the keys (or the token, same rule) even at mode 0600."""
    path = tmp_path / "vrrp10"
    path.write_text("hex:" + K1.hex() + "\n")
    path.chmod(0o600)
    os.chown(path, 65534, 65534)  # nobody
    conf = instance(f"    auth_hmac {{\n        key 1 file:{path}\n        active_key 1\n    }}\n")
    try:
        with pytest.raises(ConfigError, match="owned by uid 65534, who could replace it"):
            loads(conf, "k.conf")
        with pytest.raises(ProviderError, match="owned by uid 65534"):
            read_token(str(path))
    finally:
        os.chown(path, 0, 0)
    assert loads(conf, "k.conf").instances[0].auth_hmac is not None


def test_over_ipv6_the_checksum_covers_the_trailer_as_keepalived_s_kernel_computes_it() -> None:
    from ipaddress import IPv6Address

    from cloudvip.packet import inet_checksum, with_ipv6_checksum

    src, dst = IPv6Address("fe80::1"), IPv6Address("ff02::12")
    data = encode(Advertisement(version=3, vrid=51, priority=100, interval_cs=100,
                                addresses=(IPv6Address("2001:db8::100"),)), src, dst)
    payload = with_ipv6_checksum(data + sign(CFG, src, data, Verifier(CFG).next_sequence(NOW)), src, dst)
    pseudo = src.packed + dst.packed + len(payload).to_bytes(4, "big") + b"\0\0\0\x70"
    assert inet_checksum(pseudo + payload) == 0
    rx = _received(payload, src, dst, 255)
    assert rx.trailer is not None and Verifier(CFG).check(src, rx.vrrp, rx.trailer, NOW) is None
