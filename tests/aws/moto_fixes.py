"""Where moto 5 differs from EC2 in what failover depends on, corrected for our tests.

moto is fast and faithful for most of EC2, but (see shared notes, cloud-facts):
1. `AssignPrivateIpAddresses` ignores `AllowReassignment`: the IP is added to the new ENI and
   stays on the old one; without the flag there is no `PrivateIpAddressInUse`.
   EC2 moves the IP with the flag and refuses without it.
2. `DescribeNetworkInterfaces` filters `addresses.private-ip-address` / `private-ip-address`
   match the primary IP only; EC2 matches every private IP of the ENI.

`apply()` patches moto's classes in this process (the tests run moto's threaded server
in-process), so a provider that relied on moto's behaviour fails here as it would on AWS.
Each fix is pinned by tests/aws/test_moto_fixes.py.
"""

from __future__ import annotations

from typing import Any

_applied = False
#: test-side fault injection: errors the next calls of an action get, e.g.
#: FAULTS["AssignPrivateIpAddresses"] = [("RequestLimitExceeded", 503), ("InternalError", 500)]
FAULTS: dict[str, list[tuple[str, int]]] = {}
#: successful AssignPrivateIpAddresses calls per ENI, for counting API writes
WRITES: dict[str, int] = {}


def _all_private_ips(eni: Any) -> list[str]:
    ips = [eni.private_ip_address] + [a["PrivateIpAddress"] for a in eni.private_ip_addresses]
    return list(dict.fromkeys(ip for ip in ips if ip))


def _injected(code: str, status: int) -> Exception:
    """An EC2 error response with any HTTP status (moto's own errors are all 400)."""
    from werkzeug.exceptions import HTTPException

    body = (f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>injected by the test</Message></Error></Errors><RequestID>test</RequestID></Response>")

    class Injected(HTTPException):
        def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
            return [("Content-Type", "text/xml")]

    exc = Injected(description=body)
    exc.code = status
    return exc


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
    from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces

    original_filter = NetworkInterface.get_filter_value

    def get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name in ("addresses.private-ip-address", "private-ip-address"):
            return _all_private_ips(self)
        return original_filter(self, filter_name, method_name)

    original_assign = NetworkInterfaceBackend.assign_private_ip_addresses

    def assign(self: Any, eni_id: str, private_ip_addresses: list[str] | None = None,
               secondary_ips_count: int | None = None, allow_reassignment: bool = False) -> Any:
        eni = self.get_network_interface(eni_id)
        for ip in private_ip_addresses or []:
            for other in self.enis.values():
                if other.id == eni.id or other.subnet.id != eni.subnet.id or ip not in _all_private_ips(other):
                    continue
                if ip == other.private_ip_address:
                    raise EC2ClientError("InvalidParameterValue", f"{ip} is the primary IP of {other.id}")
                if not allow_reassignment:
                    raise EC2ClientError("PrivateIpAddressInUse",
                                         f"Some of the specified addresses are already assigned: {ip}")
                other.private_ip_addresses[:] = [a for a in other.private_ip_addresses
                                                 if a.get("PrivateIpAddress") != ip]
        return original_assign(self, eni_id, private_ip_addresses, secondary_ips_count)

    def assign_response(self: Any) -> Any:
        from moto.core.responses import ActionResult

        pending = FAULTS.get("AssignPrivateIpAddresses")
        if pending:
            raise _injected(*pending.pop(0))

        eni = self.ec2_backend.assign_private_ip_addresses(
            self._get_param("NetworkInterfaceId"), self._get_param("PrivateIpAddresses", []),
            self._get_int_param("SecondaryPrivateIpAddressCount", 0),
            allow_reassignment=self._get_bool_param("AllowReassignment", False))
        WRITES[eni.id] = WRITES.get(eni.id, 0) + 1
        return ActionResult({"NetworkInterfaceId": eni.id, "AssignedPrivateIpAddresses": eni.private_ip_addresses})

    NetworkInterface.get_filter_value = get_filter_value
    NetworkInterfaceBackend.assign_private_ip_addresses = assign
    ElasticNetworkInterfaces.assign_private_ip_addresses = assign_response
    _applied = True
