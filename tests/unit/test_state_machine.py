"""The VRRP state machine, driven with synthetic events and a fake clock."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest

from cloudvip.packet import Advertisement, AuthType, DropReason
from cloudvip.state_machine import (AdvertReceived, ArmTimer, Dropped, Notify, PeerPolicy, RefreshVips,
                                    ReleaseVips, Router, RouterParams, SendAdvert, Shutdown, Start,
                                    State, TakeVips, TimerFired, TrackChanged, master_down_interval,
                                    skew_time)
from cloudvip.tracking import FAULT, OK, TrackState

ME = IPv4Address("10.0.0.2")
LOWER_IP = IPv4Address("10.0.0.1")
HIGHER_IP = IPv4Address("10.0.0.3")
VIP = IPv4Address("10.0.0.100")


def params(**kw) -> RouterParams:
    base = dict(name="VI_1", vrid=51, priority=100, primary_address=ME, vips=(VIP,), version=2,
                advert_interval_cs=100, auth_type=AuthType.PASS, auth_data=b"secretpw")
    base.update(kw)
    return RouterParams(**base)


def advert(r: Router, priority: int, **kw) -> Advertisement:
    kw.setdefault("auth_data", r.params.auth_data.ljust(8, b"\0"))
    return replace(r.advert(priority), **kw)


def kinds(actions) -> list[type]:
    return [type(a) for a in actions]


def started(p: RouterParams | None = None, now: float = 0.0) -> Router:
    r = Router(p or params())
    r.handle(Start(now))
    return r


def master(p: RouterParams | None = None) -> Router:
    r = started(p)
    r.handle(TimerFired(r.deadline))
    assert r.state is State.MASTER
    return r


# ---------- timer formulas ----------

def test_v2_skew_and_master_down_interval() -> None:
    assert skew_time(2, 100, 100) == pytest.approx(156 / 256)
    assert master_down_interval(2, 100, 100) == pytest.approx(3.609375)
    assert master_down_interval(2, 90, 100) == pytest.approx(3.6484375)   # keepalived measured 3649 ms


def test_v3_skew_scales_with_master_adver_interval() -> None:
    assert skew_time(3, 90, 10) == pytest.approx(166 * 10 / 256 / 100)
    assert master_down_interval(3, 90, 10) == pytest.approx(0.3 + 0.0648437, abs=1e-6)  # keepalived: 365 ms
    assert skew_time(3, 90, 200) == pytest.approx(2 * skew_time(3, 90, 100))


# ---------- Initialize ----------

def test_start_enters_backup_with_master_down_timer_even_with_state_master() -> None:
    r = Router(params())
    actions = r.handle(Start(10.0))
    assert r.state is State.BACKUP
    assert actions == [Notify(State.INIT, State.BACKUP, 100, "init"), ArmTimer(10.0 + 3.609375)]


def test_address_owner_becomes_master_at_once() -> None:
    r = Router(params(priority=255))
    actions = r.handle(Start(5.0))
    assert r.state is State.MASTER
    assert kinds(actions) == [SendAdvert, TakeVips, Notify, ArmTimer]
    assert actions[0].advert.priority == 255
    assert r.deadline == 6.0


def test_start_is_ignored_when_running() -> None:
    r = started()
    assert r.handle(Start(1.0)) == []


# ---------- Backup ----------

def test_backup_becomes_master_when_down_timer_expires() -> None:
    r = started()
    actions = r.handle(TimerFired(3.609375))
    assert r.state is State.MASTER
    assert kinds(actions) == [SendAdvert, TakeVips, Notify, ArmTimer]
    note = actions[2]
    assert note.reason == "master down: no advert for 3.61 s"
    assert r.deadline == pytest.approx(4.609375)


def test_early_or_stale_timer_does_nothing() -> None:
    r = started()
    assert r.handle(TimerFired(1.0)) == []
    assert r.state is State.BACKUP


def test_backup_resets_down_timer_on_higher_priority_advert() -> None:
    r = started(params(priority=90))
    actions = r.handle(AdvertReceived(2.0, advert(r, 100), HIGHER_IP))
    assert actions == [ArmTimer(2.0 + 3.6484375)]
    assert r.master_address == HIGHER_IP and r.master_priority == 100


def test_backup_resets_down_timer_on_equal_priority_advert() -> None:
    r = started()
    r.handle(AdvertReceived(2.0, advert(r, 100), LOWER_IP))
    assert r.deadline == pytest.approx(2.0 + 3.609375)


def test_backup_takes_over_skew_time_after_priority_zero() -> None:
    r = started(params(priority=90))
    r.handle(AdvertReceived(1.0, advert(r, 100), HIGHER_IP))
    assert r.handle(AdvertReceived(1.5, advert(r, 0), HIGHER_IP)) == [ArmTimer(1.5 + 166 / 256)]
    actions = r.handle(TimerFired(1.5 + 166 / 256))
    assert r.state is State.MASTER and TakeVips() in actions
    assert Notify(State.BACKUP, State.MASTER, 90, "master 10.0.0.3 resigned (priority 0)") in actions


def test_a_new_master_after_a_resignation_restores_the_full_down_interval() -> None:
    r = started(params(priority=90))
    r.handle(AdvertReceived(1.0, advert(r, 0), HIGHER_IP))
    r.handle(AdvertReceived(1.2, advert(r, 100), LOWER_IP))
    assert r.deadline == pytest.approx(1.2 + 3.6484375)
    actions = r.handle(TimerFired(r.deadline))
    assert actions[2].reason.startswith("master down: no advert for 3.65 s")


def test_backup_with_preempt_ignores_lower_priority_master_and_takes_over() -> None:
    r = started(params(priority=100))
    deadline = r.deadline
    assert r.handle(AdvertReceived(1.0, advert(r, 50), LOWER_IP)) == []
    assert r.deadline == deadline
    r.handle(TimerFired(deadline))
    assert r.state is State.MASTER


def test_nopreempt_backup_accepts_lower_priority_master() -> None:
    r = started(params(preempt=False))
    for t in range(1, 20):
        assert r.handle(AdvertReceived(float(t), advert(r, 50), LOWER_IP)) == [ArmTimer(t + 3.609375)]
        r.handle(TimerFired(float(t) + 0.5))
    assert r.state is State.BACKUP


def test_nopreempt_backup_still_takes_over_from_a_dead_master() -> None:
    r = started(params(preempt=False))
    r.handle(AdvertReceived(1.0, advert(r, 50), LOWER_IP))
    r.handle(TimerFired(1.0 + 3.609375))
    assert r.state is State.MASTER


def test_preempt_delay_holds_preemption_after_startup() -> None:
    r = started(params(preempt_delay=10.0), now=0.0)
    for t in range(1, 10):  # within the delay a lower master is accepted like a higher one
        assert r.handle(AdvertReceived(float(t), advert(r, 50), LOWER_IP)) == [ArmTimer(t + 3.609375)]
    assert r.state is State.BACKUP
    t = 10.5
    assert r.handle(AdvertReceived(t, advert(r, 50), LOWER_IP)) == []  # now we preempt
    r.handle(TimerFired(r.deadline))
    assert r.state is State.MASTER


def test_preempt_delay_restarts_when_a_lower_master_appears_later() -> None:
    r = started(params(preempt_delay=5.0, priority=100))
    for t in range(1, 20):  # a higher master for a while: the startup window passes
        r.handle(AdvertReceived(float(t), advert(r, 200), HIGHER_IP))
    assert r.handle(AdvertReceived(20.0, advert(r, 50), LOWER_IP)) == [ArmTimer(20.0 + 3.609375)]
    assert r.handle(AdvertReceived(24.0, advert(r, 50), LOWER_IP)) == [ArmTimer(24.0 + 3.609375)]
    assert r.handle(AdvertReceived(25.5, advert(r, 50), LOWER_IP)) == []


def test_v3_backup_learns_master_adver_interval() -> None:
    r = started(params(version=3, auth_type=AuthType.NONE, auth_data=b"", priority=90))
    adv = Advertisement(3, 51, 100, (VIP,), 200)
    assert r.handle(AdvertReceived(1.0, adv, HIGHER_IP)) == [ArmTimer(1.0 + 6 + 166 * 200 / 256 / 100)]
    assert r.master_adver_int_cs == 200


def test_v3_sub_second_interval() -> None:
    r = started(params(version=3, auth_type=AuthType.NONE, auth_data=b"", priority=90,
                       advert_interval_cs=10))
    assert r.deadline == pytest.approx(0.3 + 166 * 10 / 256 / 100)


# ---------- Master ----------

def test_master_sends_adverts_every_interval() -> None:
    r = master()
    t = r.deadline
    for _ in range(5):
        actions = r.handle(TimerFired(t))
        assert kinds(actions) == [SendAdvert, ArmTimer]
        assert actions[0].advert.priority == 100
        t = r.deadline
    assert r.state is State.MASTER


def test_master_yields_to_higher_priority() -> None:
    r = master()
    actions = r.handle(AdvertReceived(10.0, advert(r, 150), LOWER_IP))
    assert r.state is State.BACKUP
    assert kinds(actions) == [ReleaseVips, Notify, ArmTimer]
    assert actions[0].yield_to == LOWER_IP  # the master we stepped down for
    assert actions[1].reason == "higher priority master 10.0.0.1 (priority 150)"
    assert r.deadline == pytest.approx(10.0 + 3.609375)


def test_master_yields_to_equal_priority_from_higher_address() -> None:
    r = master()
    actions = r.handle(AdvertReceived(10.0, advert(r, 100), HIGHER_IP))
    assert r.state is State.BACKUP and ReleaseVips(yield_to=HIGHER_IP) in actions


def test_master_keeps_role_against_equal_priority_from_lower_address() -> None:
    r = master()
    actions = r.handle(AdvertReceived(10.0, advert(r, 100), LOWER_IP))
    assert r.state is State.MASTER
    assert kinds(actions) == [SendAdvert, RefreshVips]


def test_master_readvertises_at_once_against_lower_priority() -> None:
    r = master()
    deadline = r.deadline
    actions = r.handle(AdvertReceived(10.0, advert(r, 50), HIGHER_IP))
    assert kinds(actions) == [SendAdvert, RefreshVips]
    assert r.state is State.MASTER and r.deadline == deadline


def test_lower_prio_no_advert_master_sends_no_answer_but_still_reannounces() -> None:
    r = master(params(lower_prio_no_advert=True))  # keepalived's lower_prio_no_advert, on in strict mode
    actions = r.handle(AdvertReceived(10.0, advert(r, 50), HIGHER_IP))
    assert kinds(actions) == [RefreshVips] and r.state is State.MASTER


def test_master_answers_priority_zero_with_an_advert() -> None:
    r = master()
    actions = r.handle(AdvertReceived(10.0, advert(r, 0), HIGHER_IP))
    assert kinds(actions) == [SendAdvert, ArmTimer] and r.deadline == 11.0
    assert r.state is State.MASTER


def test_ipv6_tie_break_compares_addresses() -> None:
    me = IPv6Address("fe80::2")
    vip = IPv6Address("2001:db8::100")
    r = master(params(primary_address=me, vips=(vip,), version=3, auth_type=AuthType.NONE, auth_data=b""))
    adv = Advertisement(3, 51, 100, (vip,), 100)
    assert kinds(r.handle(AdvertReceived(9.0, adv, IPv6Address("fe80::1")))) == [SendAdvert, RefreshVips]
    r.handle(AdvertReceived(9.5, adv, IPv6Address("fe80::3")))
    assert r.state is State.BACKUP


# ---------- Shutdown ----------

def test_master_shutdown_sends_priority_zero_and_releases() -> None:
    r = master()
    actions = r.handle(Shutdown(20.0))
    assert kinds(actions) == [SendAdvert, ReleaseVips, Notify, ArmTimer]
    assert actions[0].advert.priority == 0
    assert actions[2] == Notify(State.MASTER, State.STOP, 100, "shutdown")
    assert r.state is State.STOP and r.deadline is None


def test_backup_shutdown_only_notifies() -> None:
    r = started()
    assert kinds(r.handle(Shutdown(1.0))) == [Notify, ArmTimer]
    assert r.handle(Shutdown(2.0)) == []
    assert r.handle(AdvertReceived(3.0, advert(r, 100), HIGHER_IP))[0].reason is DropReason.NOT_ACCEPTING


def test_restart_after_stop() -> None:
    r = master()
    r.handle(Shutdown(20.0))
    r.handle(Start(30.0))
    assert r.state is State.BACKUP and r.deadline == pytest.approx(33.609375)


# ---------- tracking, priority, FAULT ----------

def test_weighted_failure_lowers_the_advertised_priority_at_once() -> None:
    r = master()
    actions = r.handle(TrackChanged(10.0, "script:chk", TrackState(delta=-50)))
    assert kinds(actions) == [SendAdvert, ArmTimer]
    assert actions[0].advert.priority == 50 and r.priority == 50
    assert r.handle(TrackChanged(11.0, "script:chk", TrackState(delta=-50))) == []  # no change, no advert


def test_priority_is_clamped_to_1_254() -> None:
    r = started()
    r.handle(TrackChanged(1.0, "a", TrackState(delta=200)))
    assert r.priority == 254
    r.handle(TrackChanged(1.0, "a", TrackState(delta=-200)))
    assert r.priority == 1


def test_owner_priority_ignores_weights() -> None:
    r = started(params(priority=255))
    r.handle(TrackChanged(1.0, "a", TrackState(delta=-100)))
    assert r.priority == 255


def test_backup_priority_change_moves_its_skew() -> None:
    r = started(params(priority=100))
    r.handle(TrackChanged(1.0, "a", TrackState(delta=-50)))
    r.handle(AdvertReceived(2.0, advert(r, 200), HIGHER_IP))
    assert r.deadline == pytest.approx(2.0 + master_down_interval(2, 50, 100))


def test_fault_as_master_sends_priority_zero_and_releases() -> None:
    r = master()
    actions = r.handle(TrackChanged(10.0, "interface:eth0", FAULT))
    assert r.state is State.FAULT
    assert kinds(actions) == [SendAdvert, ReleaseVips, Notify, ArmTimer]
    assert actions[0].advert.priority == 0
    assert actions[2].reason == "tracked interface:eth0 failed"
    assert r.deadline is None


def test_fault_ignores_adverts_and_recovers_to_backup() -> None:
    r = started()
    r.handle(TrackChanged(1.0, "x", FAULT))
    assert r.state is State.FAULT
    dropped = r.handle(AdvertReceived(2.0, advert(r, 50), LOWER_IP))
    assert dropped[0].reason is DropReason.NOT_ACCEPTING
    actions = r.handle(TrackChanged(3.0, "x", OK))
    assert r.state is State.BACKUP
    assert kinds(actions) == [Notify, ArmTimer]
    assert r.deadline == pytest.approx(3.0 + 3.609375)


def test_all_faults_must_clear() -> None:
    r = started()
    r.handle(TrackChanged(1.0, "a", FAULT))
    r.handle(TrackChanged(1.0, "b", FAULT))
    r.handle(TrackChanged(2.0, "a", OK))
    assert r.state is State.FAULT


def test_start_while_faulted_enters_fault() -> None:
    r = Router(params())
    r.handle(TrackChanged(0.0, "a", FAULT))
    actions = r.handle(Start(1.0))
    assert r.state is State.FAULT and kinds(actions) == [Notify, ArmTimer]


def test_owner_returns_to_master_after_fault() -> None:
    r = started(params(priority=255))
    r.handle(TrackChanged(1.0, "a", FAULT))
    r.handle(TrackChanged(2.0, "a", OK))
    assert r.state is State.MASTER


# ---------- what an instance accepts ----------

def _drop(r: Router, adv: Advertisement, src=HIGHER_IP, ttl: int = 255) -> DropReason | None:
    actions = r.handle(AdvertReceived(1.0, adv, src, ttl))
    return actions[0].reason if actions and isinstance(actions[0], Dropped) else None


def test_accepts_a_valid_advert() -> None:
    r = started()
    assert _drop(r, advert(r, 100)) is None


@pytest.mark.parametrize("change,reason", [
    (dict(vrid=52), DropReason.WRONG_VRID),
    (dict(version=3), DropReason.BAD_VERSION),
    (dict(auth_data=b"wrongpw\0"), DropReason.BAD_AUTH),
    (dict(auth_type=AuthType.NONE), DropReason.BAD_AUTH),
    (dict(interval_cs=200), DropReason.INTERVAL_MISMATCH),
    (dict(addresses=(IPv4Address("10.9.9.9"),)), DropReason.ADDRESS_MISMATCH),
    (dict(addresses=(VIP, VIP)), DropReason.ADDRESS_MISMATCH),
    (dict(addresses=()), DropReason.ADDRESS_MISMATCH),
])
def test_drops_like_keepalived(change: dict, reason: DropReason) -> None:
    r = started()
    deadline = r.deadline
    assert _drop(r, advert(r, 200, **change)) is reason
    assert r.deadline == deadline  # a dropped advert never resets the timer


def test_skip_check_adv_addr_accepts_other_addresses() -> None:
    r = started(params(check_addresses=False))
    assert _drop(r, advert(r, 200, addresses=())) is None


def test_own_multicast_echo_is_dropped() -> None:
    r = started()
    assert _drop(r, advert(r, 100), src=ME) is DropReason.OWN_PACKET


def test_multicast_requires_ttl_255() -> None:
    r = started()
    assert _drop(r, advert(r, 100), ttl=254) is DropReason.BAD_TTL


def test_unicast_accepts_other_ttls_only_from_peers_within_limits() -> None:
    r = started(params(peers={HIGHER_IP: PeerPolicy(), LOWER_IP: PeerPolicy(min_ttl=250, max_ttl=255)}))
    assert _drop(r, advert(r, 100), src=HIGHER_IP, ttl=64) is None
    assert _drop(r, advert(r, 100), src=LOWER_IP, ttl=64) is DropReason.BAD_TTL
    assert _drop(r, advert(r, 100), src=IPv4Address("10.0.0.9")) is DropReason.NOT_A_PEER


def test_unknown_event_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Router(params()).handle(object())  # type: ignore[arg-type]


def test_a_flood_of_lower_priority_adverts_is_answered_once_per_advert_interval_per_source() -> None:
    """keepalived answers each at once; a misbehaving or spoofed peer's 1,000 adverts a second must
    not cost 1,000 adverts and 1,000 cloud ownership reads."""
    r = master()
    answered = []
    for i in range(1000):
        now = 10.0 + i * 0.001  # 1,000 in one second, advert_int 1
        actions = r.handle(AdvertReceived(now, advert(r, 50), HIGHER_IP))
        if actions:
            answered.append((now, kinds(actions)))
    assert [k for _, k in answered] == [[SendAdvert, RefreshVips]]
    # another source is answered on its own; the first again after an advert interval
    assert kinds(r.handle(AdvertReceived(10.5, advert(r, 50), LOWER_IP))) == [SendAdvert, RefreshVips]
    assert kinds(r.handle(AdvertReceived(11.0, advert(r, 50), HIGHER_IP))) == [SendAdvert, RefreshVips]
    assert r.state is State.MASTER


def test_settings_applied_in_place_make_no_transition() -> None:
    """A reload's new priority reaches the wire at once from a master; a removed tracked object
    no longer counts; neither is a transition."""
    from dataclasses import replace

    from cloudvip.state_machine import Reconfigured, TrackChanged
    from cloudvip.tracking import TrackState

    r = master()
    assert kinds(r.handle(Reconfigured(10.0, replace(r.params, priority=120)))) == [SendAdvert, ArmTimer]
    assert r.state is State.MASTER and r.priority == 120
    assert r.handle(Reconfigured(10.1, replace(r.params, advert_interval_cs=200))) == []  # next advert's interval
    r.handle(TrackChanged(10.2, "script:chk", TrackState(delta=-30)))
    assert r.priority == 90
    r.handle(TrackChanged(10.3, "script:chk", None))
    assert r.priority == 120 and "script:chk" not in r.tracks and r.state is State.MASTER


def test_which_changed_settings_need_a_restart() -> None:
    from dataclasses import replace

    from cloudvip.agent import restart_reasons
    from cloudvip.config import loads

    inst = loads("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n priority 100\n"
                 " virtual_ipaddress {\n  10.0.0.100/24\n }\n}\n").instances[0]
    assert restart_reasons(inst, replace(inst, priority=150, advert_int=2.0, nopreempt=True)) == []
    assert restart_reasons(inst, replace(inst, vrid=52, interface="eth1")) == ["interface", "vrid"]
    cloud = loads("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n priority 100\n"
                  " virtual_ipaddress {\n  10.0.0.100/24\n }\n cloud aws {\n  mode secondary_ip\n }\n}\n").instances[0]
    assert restart_reasons(inst, replace(inst, cloud=cloud.cloud)) == ["provider (linux -> aws)"]


def test_startup_delay_no_mastership_before_it_ends_and_a_master_heard_is_followed() -> None:
    """keepalived's vrrp_startup_delay: the router listens, but does not become master (not even
    the address owner) until the delay has run out."""
    r = started(params(startup_delay=10.0), now=0.0)
    assert r.state is State.BACKUP and r.deadline == 10.0
    assert r.handle(TimerFired(10.0 - 1e-9)) == []  # early wake-up: nothing
    r.handle(TimerFired(10.0))
    assert r.state is State.MASTER
    owner = started(params(priority=255, startup_delay=5.0), now=0.0)
    assert owner.state is State.BACKUP and owner.deadline == 5.0
    heard = started(params(startup_delay=10.0), now=0.0)
    heard.handle(AdvertReceived(9.0, advert(heard, 150), HIGHER_IP))
    heard.handle(TimerFired(10.0))
    assert heard.state is State.BACKUP and heard.master_address == HIGHER_IP
