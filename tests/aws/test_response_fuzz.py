"""What the aws provider makes of EC2's answers, fuzzed (hypothesis) like the packet decoder:
whatever comes back (XML of any shape with the field names EC2 uses, errors with any code and
status, bytes that are no XML at all), every provider operation either completes or raises a
ProviderError that says what went wrong: never a KeyError or TypeError from deep inside.

The answers are fed to the real boto3 client through botocore's `before-send` hook, so
botocore's own parser reads them exactly as it reads EC2's; nothing goes on the network."""

from __future__ import annotations

import itertools
from typing import Any, Iterator
from xml.sax.saxutils import escape

import pytest

pytest.importorskip("boto3")

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cloudvip_providers.aws import AwsProvider  # noqa: E402

from ..fake_host import build  # noqa: E402
from ..provider_fuzz import every_operation, instance_conf, start_answered  # noqa: E402

SETS = ["networkInterfaceSet", "addressesSet", "routeTableSet", "routeSet", "reservationSet", "instancesSet",
        "privateIpAddressesSet", "tagSet"]
LEAVES = ["networkInterfaceId", "privateIpAddress", "instanceId", "routeTableId", "destinationCidrBlock",
          "allocationId", "associationId", "sourceDestCheck", "publicIp", "key", "value", "return"]
ME, PEER_ENI, INSTANCE, TABLE = "eni-0aaaaaaaaaaaaaaaa", "eni-0bbbbbbbbbbbbbbbb", "i-0aaaaaaaaaaaaaaaa", "rtb-0aaaaaaaa"
values = st.one_of(st.sampled_from([ME, PEER_ENI, "eni-0cccccccc", "198.51.100.12", "198.51.100.100", "203.0.113.10/32",
                                    "198.51.100.100/32", INSTANCE, TABLE, "true", "false", "", " ", "-1"]),
                   st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=24))  # XML-legal text
leaves = st.dictionaries(st.sampled_from(LEAVES), values, max_size=5).map(
    lambda d: "".join(f"<{k}>{escape(v)}</{k}>" for k, v in d.items()))
item = st.recursive(leaves, lambda inner: st.builds(
    lambda own, name, items: own + f"<{name}>" + "".join(f"<item>{i}</item>" for i in items) + f"</{name}>",
    leaves, st.sampled_from(SETS), st.lists(inner, max_size=3)), max_leaves=12)
top = st.builds(lambda name, items: f"<{name}>" + "".join(f"<item>{i}</item>" for i in items) + f"</{name}>",
                st.sampled_from(SETS), st.lists(item, max_size=3))
document = st.builds(lambda kids: '<Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                                  f"<requestId>r</requestId>{''.join(kids)}</Response>", st.lists(top, max_size=3))
error = st.builds(lambda code, msg: f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(msg)}"
                                    "</Message></Error></Errors><RequestID>r</RequestID></Response>",
                  st.sampled_from(["RequestLimitExceeded", "InternalError", "UnauthorizedOperation",
                                   "InvalidNetworkInterfaceID.NotFound", ""]) | st.text(max_size=12),
                  st.text(max_size=24))
# mostly well-formed answers of any shape: what reaches our reading code
body = st.one_of(document.map(str.encode), document.map(str.encode), document.map(str.encode),
                 error.map(str.encode), st.binary(max_size=300))
answer = st.tuples(st.sampled_from([200, 200, 200, 200, 200, 400, 403, 429, 500, 503]), body)

MODES = {"secondary_ip": "", "elastic_ip": "        allocation_id eipalloc-0aaaaaaaa\n",
         "route_table": f"        route_tables {TABLE}\n"}


class Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


class Scripted:
    """botocore's before-send hook: answers every request with the next scripted answer."""

    def __init__(self) -> None:
        self.answers: Iterator[tuple[int, bytes]] = iter(())

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        status, data = next(self.answers, (200, b"<Response/>"))
        return AWSResponse(request.url, status, {}, Raw(data))


def fuzzed_provider(mode: str) -> tuple[AwsProvider, Scripted]:
    vip = "198.51.100.100/24" if mode != "route_table" else "203.0.113.10/32"
    conf = instance_conf(vip, "aws", f"        mode {mode}\n{MODES[mode]}        instance_id {INSTANCE}\n"
                                     f"        eni {ME}\n        region eu-central-1\n        peer_tag cluster=lab\n"
                                     "        endpoint http://127.0.0.1:9\n")
    p, _ = build(AwsProvider, conf)
    # what is fuzzed is reading the answers: a verification that waits out EC2's read lag (5 s
    # of real sleeps per claim the answers do not confirm) would only make each example slow
    p.read_lag = 0.0
    script = Scripted()
    start_answered(p, lambda client: client.meta.events.register("before-send.ec2", script))
    return p, script


@pytest.mark.parametrize("mode", list(MODES))
def test_any_ec2_answer_gives_a_result_or_a_provider_error(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (("AWS_ACCESS_KEY_ID", "fuzz"), ("AWS_SECRET_ACCESS_KEY", "fuzz")):
        monkeypatch.setenv(var, value)  # requests are signed before the hook answers them
    p, script = fuzzed_provider(mode)
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(answer, min_size=1, max_size=6))
    @example([(200, b'<Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><networkInterfaceSet><item>'
                    b"<privateIpAddress>198.51.100.12</privateIpAddress></item></networkInterfaceSet></Response>")])
    def check(answers: list[tuple[int, bytes]]) -> None:
        every_operation(p, lambda: setattr(script, "answers", itertools.cycle(answers)), seen)

    check()
    assert {"ok", "error"} <= seen, seen  # the fuzz reached both outcomes
