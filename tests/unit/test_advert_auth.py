"""cloudvip's advert authentication: HMAC trailer, replay protection, key files, rotation."""

from __future__ import annotations

import os
import stat
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudvip import auth_state
from cloudvip.advert_auth import (TRAILER_LEN, WINDOW_US, KeyFileError, Keys, Verifier, load_keys, parse_keys, sign,
                                  split)
from cloudvip.packet import Advertisement, decode, encode
from cloudvip.provider import ProviderError
from cloudvip_providers.hetzner import read_token
from cloudvip.transport import _received

SRC, DST = IPv4Address("198.51.100.11"), IPv4Address("198.51.100.12")
K1, K2 = "11" * 32, "22" * 32
NOW = 1_800_000_000_000_000


def keys(text: str) -> Keys:
    return parse_keys(text, "k")


def vrrp() -> bytes:
    return encode(Advertisement(version=3, vrid=51, priority=100, interval_cs=100,
                                addresses=(IPv4Address("198.51.100.100"),)), SRC, DST)


def test_signed_advert_verifies_once() -> None:
    k = keys(f"1 {K1}\n")
    data = vrrp()
    trailer = sign(k, SRC, data, NOW)
    assert len(trailer) == TRAILER_LEN
    v = Verifier(k)
    assert v.check(SRC, data, trailer, NOW) is None
    assert v.check(SRC, data, trailer, NOW + 1) == "auth_replay"  # the same advert again
    assert v.check(SRC, data, sign(k, SRC, data, NOW + 1000), NOW + 1000) is None  # the next one


@pytest.mark.parametrize("case, reason", [
    ("wrong key", "auth_bad_mac"), ("unknown id", "auth_unknown_key"), ("tampered", "auth_bad_mac"),
    ("other source", "auth_bad_mac"), ("missing", "auth_missing"), ("stale", "auth_replay"),
])
def test_bad_adverts_are_dropped_with_a_reason(case: str, reason: str) -> None:
    ours = keys(f"1 {K1}\n")
    data = vrrp()
    signer = {"wrong key": keys(f"1 {K2}\n"), "unknown id": keys(f"7 {K1}\n")}.get(case, ours)
    at = NOW - WINDOW_US - 1 if case == "stale" else NOW
    trailer: bytes | None = sign(signer, SRC, data, at)
    src, body = SRC, data
    if case == "tampered":
        body = data[:-1] + bytes([data[-1] ^ 1])
    elif case == "other source":
        src = DST
    elif case == "missing":
        trailer = None
    assert Verifier(ours).check(src, body, trailer, NOW) == reason


def test_rotation_accepts_old_and_new() -> None:
    data = vrrp()
    old, new = keys(f"1 {K1}\n"), keys(f"2 {K2}\n")
    during = keys(f"2 {K2}\n1 {K1}\n")  # signs with 2, still accepts 1
    v = Verifier(during)
    assert v.check(SRC, data, sign(old, SRC, data, NOW), NOW) is None
    assert v.check(SRC, data, sign(new, SRC, data, NOW + 1), NOW + 1) is None
    assert sign(during, SRC, data, NOW)[3] == 2


def test_key_file_errors_and_permissions(tmp_path: Path) -> None:
    for text, where in ((f"1 {K1}\n1 {K2}\n", "k:2"), ("1 abcd\n", "k:1"), ("x y\n", "k:1"), ("# none\n", "no key")):
        with pytest.raises(KeyFileError, match=where):
            parse_keys(text, "k")
    path = tmp_path / "vrrp.keys"
    path.write_text(f"# rotated 2026-11\n3 {K1}  # current\n")
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keys(str(path))
    path.chmod(0o600)
    assert load_keys(str(path)).signing_id == 3


def test_a_signed_packet_is_split_and_a_plain_one_is_not() -> None:
    k = keys(f"1 {K1}\n")
    data = vrrp()
    rx = _received(data + sign(k, SRC, data, NOW), SRC, DST, 255)
    assert (rx.vrrp, rx.trailer is not None, rx.advert.priority) == (data, True, 100)
    plain = _received(data, SRC, DST, 255)
    assert plain.trailer is None and plain.vrrp == data
    assert split(data) == (data, None)


@given(st.binary(min_size=0, max_size=120))
def test_garbage_trailers_never_raise(junk: bytes) -> None:
    data = vrrp()
    v = Verifier(keys(f"1 {K1}\n"))
    assert v.check(SRC, data, junk, NOW) in ("auth_missing", "auth_unknown_key", "auth_bad_mac", "auth_replay")
    assert decode(data, SRC, DST).vrid == 51


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the file to another owner needs root")
def test_a_key_file_someone_else_owns_is_refused(tmp_path: Path) -> None:
    """Its owner could replace the keys (or the token, same rule) even at mode 0600."""
    path = tmp_path / "vrrp.keys"
    path.write_text(f"1 {K1}\n")
    path.chmod(0o600)
    os.chown(path, 65534, 65534)  # nobody
    try:
        with pytest.raises(KeyFileError, match="owned by uid 65534, who could replace it"):
            load_keys(str(path))
        with pytest.raises(ProviderError, match="owned by uid 65534"):
            read_token(str(path))
    finally:
        os.chown(path, 0, 0)
    assert load_keys(str(path)).signing_id == 1


def test_a_sender_whose_clock_steps_back_is_not_taken_for_a_replay() -> None:
    """The sender's wall clock jumps back 10 s (NTP, a VM restored): its counter does not, so
    the receiver (whose clock did not move) keeps accepting every advert: no failover."""
    k = keys(f"1 {K1}\n")
    sender, receiver = Verifier(k), Verifier(k)
    data = vrrp()
    for i in range(40):  # 0.1 s adverts; the step after the 10th
        sender_clock = NOW + i * 100_000 - (10_000_000 if i >= 10 else 0)
        trailer = sign(k, SRC, data, sender.next_counter(sender_clock))
        assert receiver.check(SRC, data, trailer, NOW + i * 100_000) is None, i


def test_an_advert_captured_before_a_receiver_restart_is_a_replay_after_it(tmp_path: Path) -> None:
    k = keys(f"1 {K1}\n")
    data = vrrp()
    sender, receiver = Verifier(k), Verifier(k)
    captured = sign(k, SRC, data, sender.next_counter(NOW))
    newer = sign(k, SRC, data, sender.next_counter(NOW + 100_000))
    assert receiver.check(SRC, data, captured, NOW) is None
    assert receiver.check(SRC, data, newer, NOW + 100_000) is None
    state = auth_state.state_path("/etc/keepalived/keepalived.conf", "VI_1", tmp_path)
    auth_state.save(state, receiver.sent, receiver.last)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600 and stat.S_IMODE(state.parent.stat().st_mode) == 0o700

    restarted = Verifier(k)
    restarted.sent, restarted.last = auth_state.load(state)
    assert restarted.check(SRC, data, captured, NOW + 200_000) == "auth_replay"  # within the window, yet old
    assert restarted.check(SRC, data, sign(k, SRC, data, sender.next_counter(NOW + 200_000)), NOW + 200_000) is None
    # a sender restarted with its clock stepped back goes on from the counter it saved
    auth_state.save(state, sender.sent, {})
    again = Verifier(k)
    again.sent, _ = auth_state.load(state)
    assert again.next_counter(NOW - 10_000_000) == sender.sent + 1


def test_unreadable_auth_state_starts_empty(tmp_path: Path) -> None:
    bad = tmp_path / "auth.json"
    bad.write_text("{not json")
    assert auth_state.load(bad) == (0, {})
    assert auth_state.load(tmp_path / "missing.json") == (0, {})
