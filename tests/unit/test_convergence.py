"""Property: routers with random priorities, start orders, loss and crashes converge to
exactly one master, the one the RFC says (highest priority, then highest address)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sim import Network

priorities = st.integers(min_value=1, max_value=254)
CHAOS_END = 20.0
QUIET = 15.0


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=2, max_value=3))
    return dict(
        prios=draw(st.lists(priorities, min_size=n, max_size=n)),
        starts=draw(st.lists(st.floats(min_value=0, max_value=8), min_size=n, max_size=n)),
        loss=draw(st.sampled_from([0.0, 0.1, 0.3, 0.6])),
        faults=draw(st.lists(st.tuples(st.floats(min_value=0, max_value=CHAOS_END),
                                       st.sampled_from(["kill", "shutdown", "start"]),
                                       st.integers(min_value=0, max_value=n - 1)), max_size=6)),
        version=draw(st.sampled_from([(2, 100), (3, 100), (3, 10)])),
        seed=draw(st.integers(min_value=0, max_value=2**32 - 1)),
    )


def _run(sc: dict, preempt: bool = True) -> Network:
    version, interval = sc["version"]
    net = Network(sc["prios"], version=version, interval_cs=interval, preempt=preempt, seed=sc["seed"])
    for i, t in enumerate(sc["starts"]):
        net.schedule(t, "start", i)
    for t, kind, i in sc["faults"]:
        net.schedule(t, kind, i)
    net.loss = sc["loss"]
    net.run_until(CHAOS_END)
    net.loss = 0.0
    if not any(net.alive):
        net.schedule(CHAOS_END, "start", 0)
    net.run_until(CHAOS_END + QUIET)
    return net


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_converges_to_the_rfc_master(sc: dict) -> None:
    net = _run(sc)
    masters = net.masters()
    assert len(masters) == 1 and masters[0] in net.expected_masters()


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_nopreempt_converges_to_exactly_one_master(sc: dict) -> None:
    net = _run(sc, preempt=False)
    assert len(net.masters()) == 1


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_stable_after_convergence(sc: dict) -> None:
    """Once settled without loss, nobody flaps."""
    net = _run(sc)
    changes = len(net.masters_log)
    net.run_until(CHAOS_END + QUIET + 30.0)
    assert len(net.masters_log) == changes


def test_equal_priorities_meeting_as_masters_keep_the_higher_address() -> None:
    net = Network([100, 100])
    net.loss = 1.0  # partitioned: both become master
    net.schedule(0.0, "start", 0)
    net.schedule(0.0, "start", 1)
    net.run_until(5.0)
    assert net.masters() == [0, 1]
    net.loss = 0.0
    net.run_until(8.0)
    assert net.masters() == [1]  # 198.51.100.12 > .11


def test_sigkill_failover_takes_master_down_interval() -> None:
    net = Network([100, 90])
    net.schedule(0.0, "start", 1)
    net.schedule(0.5, "start", 0)
    net.run_until(10.0)
    assert net.masters() == [0]
    became_master = net.masters_log[-1][0]
    last_advert = became_master + int(10.0 - became_master)  # node 0 advertises every second
    net.schedule(10.0, "kill", 0)
    net.run_until(20.0)
    assert net.masters() == [1]
    # node 1 (priority 90) takes over Master_Down_Interval = 3 + 166/256 s after the last advert it heard
    assert abs(net.masters_log[-1][0] - (last_advert + 0.0005 + 3 + 166 / 256)) < 1e-6


def test_sigterm_failover_takes_skew_time() -> None:
    net = Network([100, 90])
    net.schedule(0.0, "start", 1)
    net.schedule(0.5, "start", 0)
    net.run_until(10.0)
    net.schedule(10.0, "shutdown", 0)
    net.run_until(20.0)
    takeover = net.masters_log[-1]
    assert takeover[1] == 1
    assert abs(takeover[0] - (10.0 + 166 / 256 + 0.0005)) < 1e-6
