"""keepalived's event forms, as `cloudvip notify` and the companion read them."""

from __future__ import annotations

import pytest

from cloudvip.companion_events import Event, EventError, State, parse_event, parse_line, socket_path


@pytest.mark.parametrize("args, event", [
    (["INSTANCE", "VI_1", "MASTER", "100"], Event("INSTANCE", "VI_1", State.MASTER, 100)),  # generic notify
    (["GROUP", "G1", "BACKUP", "0"], Event("GROUP", "G1", State.BACKUP, 0)),
    (["master", "VI_1"], Event("INSTANCE", "VI_1", State.MASTER)),  # notify_master "cloudvip notify master VI_1"
    (["fault", "VI_2"], Event("INSTANCE", "VI_2", State.FAULT)),
    (["INSTANCE", "VI_1", "STOP"], Event("INSTANCE", "VI_1", State.STOP)),
])
def test_argv_forms(args: list[str], event: Event) -> None:
    assert parse_event(args) == event


def test_fifo_line_with_the_quoted_name_round_trips() -> None:
    ev = parse_line('INSTANCE "VI 1" MASTER 100')  # keepalived quotes the name in its fifo
    assert ev == Event("INSTANCE", "VI 1", State.MASTER, 100)
    assert parse_line(ev.words()) == ev


@pytest.mark.parametrize("args, message", [
    (["VI_1"], "not a keepalived event"),
    (["INSTANCE", "VI_1", "UP", "100"], "unknown state 'UP'"),
    (["INSTANCE", "VI_1", "MASTER", "high"], "priority 'high'"),
    (["INSTANCE", "VI_1", "MASTER", "1", "extra"], "not a keepalived event"),
])
def test_bad_events_say_what_was_expected(args: list[str], message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_event(args)


def test_one_socket_per_config(tmp_path: object) -> None:
    a, b = socket_path("/etc/keepalived/a.conf"), socket_path("/etc/keepalived/b.conf")
    assert a != b and a.startswith("/run/cloudvip-companion/companion-") and a.endswith(".sock")
    assert socket_path("/etc/keepalived/../keepalived/a.conf") == a  # the same file, the same socket


def test_the_notify_path_imports_no_config_parser_and_no_sdk() -> None:
    import subprocess
    import sys

    code = ("import sys, cloudvip.cli, cloudvip.companion_events; "
            "print(sorted(m for m in sys.modules if m.startswith(('cloudvip.config', 'boto', 'hcloud', 'pyroute2'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("spec, listen", [("9723", ("127.0.0.1", 9723)), ("0.0.0.0:9100", ("0.0.0.0", 9100)),
                                          ("[::1]:9723", ("::1", 9723))])
def test_metrics_listen_defaults_to_localhost(spec: str, listen: tuple[str, int]) -> None:
    from cloudvip.metrics import parse_listen

    assert parse_listen(spec) == listen


def test_metrics_listen_errors() -> None:
    from cloudvip.metrics import parse_listen

    with pytest.raises(ValueError, match="expected PORT or ADDR:PORT"):
        parse_listen("localhost:http")


def test_one_file_with_config_ids_gives_one_socket_per_id() -> None:
    # the lab runs three agents from one keepalived.conf with @node1/@node2/@node3 lines
    paths = {socket_path("/etc/keepalived/lab.conf", "agent", f"node{i}") for i in (1, 2, 3)}
    assert len(paths) == 3 and socket_path("/etc/keepalived/lab.conf", "agent") not in paths
