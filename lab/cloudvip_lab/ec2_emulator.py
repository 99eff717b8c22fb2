"""EC2 emulated on 127.0.0.1 by moto's server, corrected where moto differs from EC2 in what
failover depends on. Used by the tests, `cloudvip lab --cloud aws` and bench/.

moto is fast and faithful for most of EC2, but (see shared notes, cloud-facts):
1. `AssignPrivateIpAddresses` ignores `AllowReassignment`: the IP is added to the new ENI and
   stays on the old one; without the flag there is no `PrivateIpAddressInUse`.
   EC2 moves the IP with the flag and refuses without it.
2. `DescribeNetworkInterfaces` filters `addresses.private-ip-address` / `private-ip-address`
   match the primary IP only; EC2 matches every private IP of the ENI. And with several values
   moto wants the ENI's addresses to be a subset or a superset of them; EC2 matches an ENI that
   has any of them (found by the soak: a peer holding the VIP as a secondary IP was not found
   by the peer lookup for two addresses, so it looked like a stranger).
3. `AssociateAddress` ignores `PrivateIpAddress` (binds the ENI's primary IP) and accepts an
   address that is not the ENI's; `DescribeAddresses` shows no `InstanceId` when the EIP was
   associated by ENI. EC2 binds the given private IP (refusing one the ENI does not have) and
   reports the ENI's instance.
4. `CreateRoute` to a network interface overwrites a route the table already has for that
   destination; EC2 refuses with `RouteAlreadyExists` (two nodes racing to create the VIP's
   route: the second must replace it).

`apply()` patches moto's classes in this process (moto's threaded server runs in-process), so
a provider that relied on moto's behaviour fails here as it would on AWS. Each fix is pinned
by tests/aws/test_moto_fixes.py. It also adds what the tests need to see and to break:
`FAULTS` (errors the next calls of an action get), `CALLS` (every API call, timed on the
server) and `writes()` (successful mutating calls per target ENI).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

REGION = "eu-central-1"
VPC_CIDR, SUBNET_CIDR = "198.51.0.0/16", "198.51.100.0/24"
#: the route-table mode's VIP lies outside the VPC, as AWS requires
OVERLAY_VIP = "203.0.113.10"
MUTATING = ("AssignPrivateIpAddresses", "AssociateAddress", "ReplaceRoute", "CreateRoute",
            "UnassignPrivateIpAddresses", "DisassociateAddress")

#: errors the next calls of an action get, in order, e.g.
#: FAULTS["AssignPrivateIpAddresses"] = [("RequestLimitExceeded", 503), ("InternalError", 500)]
FAULTS: dict[str, list[tuple[str, int]]] = {}
#: what the instance role may not do, as IAM would refuse it: every call of these actions (a dry
#: run too) answers UnauthorizedOperation; "SimulatePrincipalPolicy" denies the simulation itself
DENIED: set[str] = set()
#: seconds every call of an action takes, e.g. DELAYS["AssignPrivateIpAddresses"] = 2.0 (a slow API)
DELAYS: dict[str, float] = {}
#: eventual consistency: for CONSISTENCY["window"] seconds after a successful write, a Describe*
#: asked exactly as before the write gets the answer it got then (EC2's reads lag its writes)
CONSISTENCY = {"window": 0.0}
READS = ("DescribeNetworkInterfaces", "DescribeAddresses", "DescribeRouteTables", "DescribeInstances")
_answers: dict[str, Any] = {}  # a read's last answer given outside a window, by request
_stale: dict[str, Any] = {}  # the answers frozen by the last write, served until _stale_until
_stale_until = [0.0]


@dataclass(frozen=True)
class Call:
    action: str
    started: float  # time.monotonic() on the server (CLOCK_MONOTONIC: comparable across processes)
    ended: float
    status: int
    eni: str  # the NetworkInterfaceId the call names, if any
    # the whole HTTP request in the emulator (parsing and rendering too): what the API costs
    http_started: float = 0.0
    http_ended: float = 0.0


CALLS: list[Call] = []
_lock = threading.Lock()
_request = threading.local()  # indexes into CALLS of the calls the current HTTP request made
_applied = False


def writes() -> dict[str, int]:
    """Successful mutating calls per ENI they name: the API writes the tests count."""
    out: dict[str, int] = {}
    with _lock:
        for c in CALLS:
            if c.action in MUTATING and c.status < 400:
                out[c.eni] = out.get(c.eni, 0) + 1
    return out


def reset_observations() -> None:
    with _lock:
        CALLS.clear()
        _answers.clear()
        _stale.clear()
    FAULTS.clear()
    DELAYS.clear()
    DENIED.clear()


def _read_key(action: str, querystring: dict[str, Any]) -> str:
    return action + repr(sorted((k, v) for k, v in querystring.items() if k not in ("Action", "Version")))


def _consistent_read(action: str, querystring: dict[str, Any], read: Any) -> Any:
    """A read's answer under eventual consistency (CONSISTENCY)."""
    key = _read_key(action, querystring)
    with _lock:
        if time.monotonic() < _stale_until[0] and key in _stale:
            return _stale[key]
    result = read()
    with _lock:
        _answers[key] = result
    return result


def _written() -> None:
    """A write succeeded: the reads made before it keep their answers for the window."""
    if CONSISTENCY["window"] <= 0:
        return
    with _lock:
        if time.monotonic() >= _stale_until[0]:
            _stale.clear()
        _stale.update(_answers)
        _stale_until[0] = time.monotonic() + CONSISTENCY["window"]


def _error_body(code: str, message: str = "injected by the test") -> str:
    return (f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>test</RequestID></Response>")


def _iam_answer(action: str, qs: dict[str, Any]) -> tuple[int, dict[str, str], str] | None:
    """What IAM decides before the service runs a call: a denial, a dry run's verdict (for every
    action: moto ignores DryRun on some, e.g. ReplaceRoute, and would make the change), or the
    policy simulation (moto has none)."""
    xml = {"Content-Type": "text/xml"}
    if action == "SimulatePrincipalPolicy":
        if action in DENIED:
            return 403, xml, ("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not "
                              "authorized to perform: iam:SimulatePrincipalPolicy</Message></Error></ErrorResponse>")
        names = [v[0] for k, v in sorted(qs.items()) if k.startswith("ActionNames.member.")]
        resources = [v[0] for k, v in sorted(qs.items()) if k.startswith("ResourceArns.member.")] or ["*"]
        members = "".join(
            f"<member><EvalActionName>{n}</EvalActionName><EvalResourceName>{r}</EvalResourceName><EvalDecision>"
            f"{'implicitDeny' if n.split(':')[-1] in DENIED else 'allowed'}</EvalDecision><MatchedStatements/>"
            f"<MissingContextValues/></member>" for n in names for r in resources)
        return 200, xml, ("<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
                          f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>"
                          f"{members}</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata>"
                          "<RequestId>lab</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>")
    if action in DENIED:
        return 403, xml, _error_body("UnauthorizedOperation", "You are not authorized to perform this operation.")
    if qs.get("DryRun") == ["true"]:
        return 412, xml, _error_body("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    return None


def _all_private_ips(eni: Any) -> list[str]:
    ips = [eni.private_ip_address] + [a["PrivateIpAddress"] for a in eni.private_ip_addresses]
    return list(dict.fromkeys(ip for ip in ips if ip))


def _patch(cls: type, **attrs: Any) -> None:
    for name, value in attrs.items():
        setattr(cls, name, value)


def _observe_calls() -> None:
    """Every EC2 call timed and recorded; injected faults answered before moto sees the call."""
    from moto.core.responses import BaseResponse
    from werkzeug.exceptions import HTTPException

    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        action = self._get_action()
        started = time.monotonic()
        eni = str(self.querystring.get("NetworkInterfaceId", [""])[0]) if hasattr(self, "querystring") else ""
        status = 500
        try:
            if DELAYS.get(action):
                time.sleep(DELAYS[action])
            pending = FAULTS.get(action)
            if pending:
                code, status = pending.pop(0)
                return (status, {"Content-Type": "text/xml"}, _error_body(code))
            qs = getattr(self, "querystring", {})
            answer = _iam_answer(action, qs)
            if answer is not None:
                status = answer[0]
                return answer
            result = (_consistent_read(action, qs, lambda: original(self)) if action in READS
                      else original(self))
            status = int(result[0]) if isinstance(result, tuple) else 200
            if action in MUTATING and status < 400:
                _written()
            return result
        except HTTPException as exc:  # moto's EC2 errors
            status = int(exc.code or 500)
            raise
        finally:
            with _lock:
                CALLS.append(Call(action, started, time.monotonic(), status, eni))
                getattr(_request, "calls", []).append(len(CALLS) - 1)

    setattr(BaseResponse, "call_action", call_action)  # noqa: B010 - patching moto

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original_app = DomainDispatcherApplication.__call__

    def timed_request(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        _request.calls = []
        started = time.monotonic()
        result = original_app(self, environ, start_response)
        ended = time.monotonic()
        with _lock:
            for i in _request.calls:
                if i < len(CALLS):  # not reset meanwhile
                    CALLS[i] = dataclasses.replace(CALLS[i], http_started=started, http_ended=ended)
        return result

    setattr(DomainDispatcherApplication, "__call__", timed_request)  # noqa: B010


def _fix_eni_filters_and_reassignment() -> None:
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

        eni = self.ec2_backend.assign_private_ip_addresses(
            self._get_param("NetworkInterfaceId"), self._get_param("PrivateIpAddresses", []),
            self._get_int_param("SecondaryPrivateIpAddressCount", 0),
            allow_reassignment=self._get_bool_param("AllowReassignment", False))
        return ActionResult({"NetworkInterfaceId": eni.id, "AssignedPrivateIpAddresses": eni.private_ip_addresses})

    import moto.ec2.utils as ec2_utils

    original_matching = ec2_utils.is_filter_matching

    def is_filter_matching(obj: Any, _filter: str, filter_value: Any) -> bool:
        if isinstance(obj, NetworkInterface) and _filter in ("addresses.private-ip-address", "private-ip-address"):
            wanted = filter_value if isinstance(filter_value, list) else [filter_value]
            return any(fnmatch.fnmatch(ip, pattern) for ip in _all_private_ips(obj) for pattern in wanted)
        return bool(original_matching(obj, _filter, filter_value))

    ec2_utils.is_filter_matching = is_filter_matching  # generic_filter looks it up at each call
    _patch(NetworkInterface, get_filter_value=get_filter_value)
    _patch(NetworkInterfaceBackend, assign_private_ip_addresses=assign)
    _patch(ElasticNetworkInterfaces, assign_private_ip_addresses=assign_response)


def _fix_elastic_ip_private_address() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_ip_addresses import ElasticAddress
    from moto.ec2.responses.elastic_ip_addresses import ElasticIPAddresses

    def private_ip_address(self: Any) -> str | None:
        if self.eni is None:
            return None
        bound = getattr(self, "bound_private_ip", None)
        return str(bound if bound in _all_private_ips(self.eni) else self.eni.private_ip_address)

    def instance_id(self: Any) -> str:
        if self.instance is not None:
            return str(self.instance.id)
        owner = getattr(self.eni, "instance", None) if self.eni is not None else None
        return str(owner.id) if owner is not None else ""

    original_filter = ElasticAddress.get_filter_value

    def get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name == "private-ip-address":
            return private_ip_address(self)
        if filter_name == "instance-id":
            return instance_id(self) or None
        return original_filter(self, filter_name, method_name)

    original_associate = ElasticIPAddresses.associate_address

    def associate_response(self: Any) -> Any:
        wanted = self._get_param("PrivateIpAddress")
        eni_id = self._get_param("NetworkInterfaceId")
        if wanted and eni_id:
            eni = self.ec2_backend.get_network_interface(eni_id)
            if wanted not in _all_private_ips(eni):
                raise EC2ClientError("InvalidParameterValue",
                                     f"The private IP address {wanted} is not associated with {eni_id}")
        result = original_associate(self)
        allocation = self._get_param("AllocationId")
        for eip in self.ec2_backend.address_by_allocation([allocation]) if allocation else []:
            eip.bound_private_ip = wanted or None
        return result

    _patch(ElasticAddress, private_ip_address=property(private_ip_address), instance_id=property(instance_id),
           get_filter_value=get_filter_value)
    _patch(ElasticIPAddresses, associate_address=associate_response)


def _fix_create_route_over_an_existing_one() -> None:
    from moto.ec2.exceptions import RouteAlreadyExistsError
    from moto.ec2.models.route_tables import RouteBackend

    original = RouteBackend.create_route

    def create_route(self: Any, route_table_id: str, destination_cidr_block: str | None,
                     *args: Any, **kwargs: Any) -> Any:
        if destination_cidr_block:
            table = self.get_route_table(route_table_id)
            if any(r.destination_cidr_block == destination_cidr_block and not r.local
                   for r in table._routes.values()):
                raise RouteAlreadyExistsError(destination_cidr_block)
        return original(self, route_table_id, destination_cidr_block, *args, **kwargs)
    _patch(RouteBackend, create_route=create_route)


def apply() -> None:
    global _applied
    if _applied:
        return
    _observe_calls()
    _fix_eni_filters_and_reassignment()
    _fix_elastic_ip_private_address()
    _fix_create_route_over_an_existing_one()
    _applied = True


def offline_credentials() -> None:
    """Fake credentials and region: botocore must never look for real ones (or probe IMDS)."""
    for var, val in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                     ("AWS_DEFAULT_REGION", REGION), ("AWS_EC2_METADATA_DISABLED", "true")):
        os.environ[var] = val


class Ec2Server:
    """moto's threaded server on 127.0.0.1 (a free port), corrected by apply()."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        offline_credentials()
        apply()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = int(port)
        self.endpoint = f"http://{host}:{port}"

    def client(self) -> Any:
        """A plain client that does not retry: what the tests inject, they see."""
        import boto3
        from botocore.config import Config

        return boto3.client("ec2", region_name=REGION, endpoint_url=self.endpoint,
                            config=Config(retries={"total_max_attempts": 1}))

    def ec2_backend(self) -> Any:
        """moto's in-process EC2 state: for observers that must not load the API with reads."""
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        return ec2_backends[DEFAULT_ACCOUNT_ID][REGION]

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"),
                               timeout=5).read()
        reset_observations()

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Ec2World:
    """A VPC with two instances (one ENI each) in one subnet, an Elastic IP and a route table."""

    endpoint: str
    client: Any
    subnet: str
    instances: list[str]
    enis: list[str]
    allocation_id: str
    route_table: str

    def vip_enis(self, vip: str) -> list[str]:
        """ENIs carrying `vip` as a private IP (secondary_ip mode)."""
        found = self.client.describe_network_interfaces(
            Filters=[{"Name": "addresses.private-ip-address", "Values": [vip]}])["NetworkInterfaces"]
        return [ni["NetworkInterfaceId"] for ni in found]

    def eip_eni(self) -> str:
        """The ENI the Elastic IP is associated with ('' if none) (elastic_ip mode)."""
        addrs = self.client.describe_addresses(AllocationIds=[self.allocation_id])["Addresses"]
        return str(addrs[0].get("NetworkInterfaceId", "")) if addrs else ""

    def route_eni(self, vip: str = OVERLAY_VIP) -> str:
        """The ENI the route table sends `vip`/32 to ('' if no route) (route_table mode)."""
        table = self.client.describe_route_tables(RouteTableIds=[self.route_table])["RouteTables"][0]
        route: dict[str, Any] = next((r for r in table["Routes"] if r.get("DestinationCidrBlock") == f"{vip}/32"), {})
        return str(route.get("NetworkInterfaceId", ""))


def build_world(server: Ec2Server, addresses: tuple[str, ...] = ("198.51.100.11", "198.51.100.12")) -> Ec2World:
    """A fresh emulated EC2 with one instance per address (the lab namespaces use the same ones),
    set up as the Terraform examples do: the pair's security group lets VRRP (protocol 112) in
    from its members, IMDSv2 is required with hop limit 2."""
    server.reset()
    client = server.client()
    vpc = client.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
    image = client.describe_images()["Images"][0]["ImageId"]
    group = client.create_security_group(GroupName="cloudvip-pair", Description="the HA pair", VpcId=vpc)["GroupId"]
    client.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "112", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": group}]}])
    instances, enis = [], []
    for ip in addresses:
        inst = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                    SubnetId=subnet, PrivateIpAddress=ip, SecurityGroupIds=[group],
                                    MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
                                    )["Instances"][0]
        instances.append(inst["InstanceId"])
        enis.append(inst["NetworkInterfaces"][0]["NetworkInterfaceId"])
    allocation = client.allocate_address(Domain="vpc")["AllocationId"]
    table = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    client.associate_route_table(RouteTableId=table, SubnetId=subnet)
    reset_observations()  # the world's own set-up calls are not the agents' writes
    return Ec2World(server.endpoint, client, subnet, instances, enis, allocation, table)
