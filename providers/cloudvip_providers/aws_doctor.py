"""`cloudvip doctor` on AWS: IMDSv2 and its hop limit, the role's permissions for exactly the
calls this mode makes (EC2 `DryRun=True` with the real arguments; AssignPrivateIpAddresses has
no DryRun, so the role's policy is simulated), the security groups between the nodes, and the
mode's resources (the VIP in the ENI's subnet, the Elastic IP, the route tables and the
source/destination check). Nothing is changed: every write is a dry run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudvip.blocking import run_blocking
from cloudvip.doctor.findings import Finding, fail, ok, warn
from cloudvip.provider import ProviderError

from .aws_imds import Imds, ImdsError

if TYPE_CHECKING:
    from .aws import AwsProvider

#: the reads every mode makes (peers, holders), and each mode's own
READS = {"secondary_ip": ("DescribeNetworkInterfaces",),
         "elastic_ip": ("DescribeNetworkInterfaces", "DescribeAddresses"),
         "route_table": ("DescribeNetworkInterfaces", "DescribeRouteTables")}


def in_container() -> bool:
    """Docker, podman, containerd or Kubernetes: IMDS is then one hop further away."""
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists() or os.environ.get("container"):
        return True
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
    except OSError:
        return False
    return any(word in cgroup for word in ("docker", "kubepods", "containerd", "libpod"))


@dataclass
class AwsDoctor:
    p: AwsProvider
    container: bool = False

    @property
    def scope(self) -> str:
        return self.p.ctx.instance.name

    async def run(self) -> list[Finding]:
        s = self.p.settings
        out: list[Finding] = []
        imds_needed = not (s.instance_id and s.eni and s.region)
        if imds_needed:
            out += await self._imds()
        started, up = await self.p.doctor_start()
        out += started
        if not up or self.p.target is None:
            return out
        out += await self.p.doctor_discovery()  # the peers the security groups are checked for
        out += await self._instance_metadata_options()
        out += await self._permissions()
        enis = await self._enis()
        if enis is not None:
            out += await self._security_groups(enis)
            out += await self._mode_resources(enis)
        return out

    # ---------- IMDS ----------
    async def _imds(self) -> list[Finding]:
        s = self.p.settings
        imds = Imds(s.imds_endpoint, v1_fallback=False)
        try:
            ttl = await run_blocking(imds.token_ttl)
        except ImdsError as exc:
            fix = "aws ec2 modify-instance-metadata-options --instance-id ID --http-endpoint enabled " \
                  "--http-tokens required"
            if self.container:
                fix = ("in a container IMDS is one hop further: aws ec2 modify-instance-metadata-options "
                       "--instance-id ID --http-put-response-hop-limit 2 (Terraform: metadata_options "
                       "{ http_put_response_hop_limit = 2 })")
            return [fail(self.scope, "imds", f"no IMDSv2 token from {imds.endpoint}: {exc}", fix)]
        return [ok(self.scope, "imds", f"IMDSv2 token from {imds.endpoint}" + (f", TTL {ttl} s" if ttl else ""))]

    async def _instance_metadata_options(self) -> list[Finding]:
        assert self.p.target is not None
        try:
            found = await self.p._call("describe_instances", InstanceIds=[self.p.target.instance_id])
            inst = found["Reservations"][0]["Instances"][0]
        except (ProviderError, LookupError) as exc:
            return [warn(self.scope, "imds options", f"cannot read the instance's metadata options: {exc}")]
        opts = inst.get("MetadataOptions", {})
        hops, tokens = opts.get("HttpPutResponseHopLimit"), opts.get("HttpTokens", "?")
        what = f"hop limit {hops}, tokens {tokens}"
        if hops == 1 and self.container:
            return [warn(self.scope, "imds options", f"{what}, and the agent runs in a container: it works here "
                         "(host networking); a container on a bridge gets no IMDSv2 token",
                         f"aws ec2 modify-instance-metadata-options --instance-id {self.p.target.instance_id} "
                         "--http-put-response-hop-limit 2")]
        if tokens != "required":
            return [warn(self.scope, "imds options", f"{what}: IMDSv1 is still open to every process here",
                         f"aws ec2 modify-instance-metadata-options --instance-id {self.p.target.instance_id} "
                         "--http-tokens required")]
        return [ok(self.scope, "imds options", what)]

    # ---------- permissions ----------
    async def _permissions(self) -> list[Finding]:
        assert self.p.target is not None
        s, t = self.p.settings, self.p.target
        checks: list[tuple[str, str, dict[str, Any]]] = [
            (action, _snake(action), {}) for action in READS[s.mode]]
        if s.peer_tag is not None:
            checks.append(("DescribeInstances", "describe_instances", {}))
        if s.mode == "elastic_ip":
            kwargs: dict[str, Any] = {"AllocationId": s.allocation_id, "NetworkInterfaceId": t.eni,
                                      "AllowReassociation": True}
            if s.private_ip is not None:
                kwargs["PrivateIpAddress"] = str(s.private_ip)
            checks.append(("AssociateAddress", "associate_address", kwargs))
        elif s.mode == "route_table":
            for table in s.route_tables:
                for vip in self.p.vips:
                    route = {"RouteTableId": table, "DestinationCidrBlock": f"{vip}/32", "NetworkInterfaceId": t.eni}
                    checks += [("ReplaceRoute", "replace_route", route), ("CreateRoute", "create_route", route)]
        out = [await self._dry_run(action, op, kwargs) for action, op, kwargs in checks]
        if s.mode == "secondary_ip":
            out.append(await self._simulated("AssignPrivateIpAddresses",
                                             f"arn:aws:ec2:{t.region}:{{account}}:network-interface/{t.eni}"))
        return out

    async def _dry_run(self, action: str, op: str, kwargs: dict[str, Any]) -> Finding:
        what = f"ec2:{action}" + (f" on {_resource(kwargs)}" if kwargs else "")
        try:
            await self.p._call(op, DryRun=True, **kwargs)
        except ProviderError as exc:
            if exc.code == "DryRunOperation":
                return ok(self.scope, "iam", f"{what}: allowed (dry run)")
            if exc.code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
                return fail(self.scope, "iam", f"{what}: DENIED for this instance's role",
                            _policy_fix(action, _resource_arn(self.p, kwargs)))
            return fail(self.scope, "iam", f"{what}: the dry run answered {exc}",
                        "check the resource ids in the cloud block")
        return warn(self.scope, "iam", f"{what}: the API ignored DryRun and answered as if the call ran")

    async def _simulated(self, action: str, resource: str) -> Finding:
        """A call without DryRun: ask IAM to evaluate the role's policies for it."""
        what = f"ec2:{action}"
        try:
            decision, role = await run_blocking(self._simulate, action, resource)
        except Exception as exc:  # botocore: denied, unreachable; never a guess
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            return warn(self.scope, "iam", f"{what}: has no DryRun and the policy simulation is not allowed "
                        f"({code}): not checked", "let the role simulate its own policy (iam:SimulatePrincipalPolicy "
                        "on its own ARN), or make sure the policy allows ec2:AssignPrivateIpAddresses on the ENIs")
        if decision == "allowed":
            return ok(self.scope, "iam", f"{what}: allowed (policy simulation of {role})")
        return fail(self.scope, "iam", f"{what}: {decision} for {role}", _policy_fix(action, resource))

    def _simulate(self, action: str, resource: str) -> tuple[str, str]:
        import boto3
        from botocore.config import Config

        assert self.p.target is not None
        region = self.p.target.region
        # endpoints as botocore finds them (AWS_ENDPOINT_URL_STS / _IAM, else AWS's)
        cfg = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
        ident = boto3.client("sts", region_name=region, config=cfg).get_caller_identity()
        account, arn = str(ident["Account"]), str(ident["Arn"])
        role = _principal_arn(arn)
        answer = boto3.client("iam", region_name=region, config=cfg).simulate_principal_policy(
            PolicySourceArn=role, ActionNames=[f"ec2:{action}"], ResourceArns=[resource.format(account=account)])
        return str(answer["EvaluationResults"][0]["EvalDecision"]), role

    # ---------- network ----------
    async def _enis(self) -> dict[str, dict[str, Any]] | None:
        """Our ENI and the peers' (by their private addresses), by address."""
        assert self.p.target is not None
        try:
            ours = await self.p._call("describe_network_interfaces", NetworkInterfaceIds=[self.p.target.eni])
            peers = self.p.peer_addresses()
            found = await self.p._call("describe_network_interfaces", Filters=[
                {"Name": "addresses.private-ip-address", "Values": peers}]) if peers else {"NetworkInterfaces": []}
        except ProviderError:
            return None  # the permission checks said why
        out = {"self": ours["NetworkInterfaces"][0]}
        for ni in found.get("NetworkInterfaces", []):
            addrs = {a.get("PrivateIpAddress") for a in ni.get("PrivateIpAddresses", [])}
            for peer in peers:
                if peer in addrs and ni.get("NetworkInterfaceId") != self.p.target.eni:
                    out[peer] = ni
        return out

    async def _security_groups(self, enis: dict[str, dict[str, Any]]) -> list[Finding]:
        """Protocol 112 (or all traffic) allowed into each node from each other, by CIDR or group."""
        ours = enis["self"]
        me = str(ours.get("PrivateIpAddress"))
        ids = sorted({g["GroupId"] for ni in enis.values() for g in ni.get("Groups", [])})
        try:
            found = await self.p._call("describe_security_groups", GroupIds=ids)
            permissions: dict[str, list[dict[str, Any]]] | None = {
                g["GroupId"]: g.get("IpPermissions", []) for g in found.get("SecurityGroups", [])}
        except ProviderError:
            permissions = None
        out = []
        for peer in self.p.peer_addresses():
            theirs = enis.get(peer)
            if theirs is None:
                out.append(warn(self.scope, "security group", f"no ENI has {peer}: not a VPC address of a peer?",
                                "check unicast_peer"))
                continue
            for src_ip, src, dst, direction in ((peer, theirs, ours, f"{peer} -> this node"),
                                                (me, ours, theirs, f"this node -> {peer}")):
                groups = [g["GroupId"] for g in dst.get("Groups", [])]
                rules = None if permissions is None else [r for g in groups for r in permissions.get(g, [])]
                src_groups = {g["GroupId"] for g in src.get("Groups", [])}
                if rules is None:
                    out.append(warn(self.scope, "security group", f"{direction}: cannot read {', '.join(groups)}",
                                    "allow ec2:DescribeSecurityGroups to let doctor check"))
                elif any(_allows_vrrp(r, src_ip, src_groups) for r in rules):
                    out.append(ok(self.scope, "security group", f"{direction}: protocol 112 allowed"))
                else:
                    group = groups[0] if groups else "sg-..."
                    out.append(fail(self.scope, "security group",
                                    f"{direction}: {', '.join(groups)} let no IP protocol 112 in from {src_ip}: "
                                    "the adverts are dropped, both nodes become master",
                                    f"aws ec2 authorize-security-group-ingress --group-id {group} --ip-permissions "
                                    f"IpProtocol=112,IpRanges=[{{CidrIp={src_ip}/32}}]\n"
                                    "(Terraform: an ingress rule with protocol = \"112\" from the pair's group)"))
        return out

    async def _mode_resources(self, enis: dict[str, dict[str, Any]]) -> list[Finding]:
        s, ours = self.p.settings, enis["self"]
        if s.mode == "secondary_ip":
            return await self._vip_in_subnet(ours)
        if s.mode == "elastic_ip":
            return await self._elastic_ip()
        return await self._route_tables(ours)

    async def _vip_in_subnet(self, eni: dict[str, Any]) -> list[Finding]:
        subnet_id = eni.get("SubnetId", "")
        try:
            found = await self.p._call("describe_subnets", SubnetIds=[subnet_id])
            cidr = ip_network(found["Subnets"][0]["CidrBlock"])
        except (ProviderError, LookupError, ValueError) as exc:
            return [warn(self.scope, "subnet", f"cannot read subnet {subnet_id}: {exc}",
                         "allow ec2:DescribeSubnets to let doctor check")]
        outside = [v for v in self.p.vips if ip_address(v) not in cidr]
        if outside:
            return [fail(self.scope, "subnet", f"VIP {', '.join(outside)} is outside {subnet_id} ({cidr}): a secondary "
                         "IP must be in the ENI's subnet (and subnets do not cross availability zones)",
                         f"pick a VIP inside {cidr} (both nodes' ENIs in the same subnet), or use mode route_table "
                         "with a VIP outside the VPC for nodes in different zones")]
        return [ok(self.scope, "subnet", f"VIP {', '.join(self.p.vips)} inside {subnet_id} ({cidr})")]

    async def _elastic_ip(self) -> list[Finding]:
        s = self.p.settings
        try:
            found = await self.p._call("describe_addresses", AllocationIds=[s.allocation_id])
            addr = found["Addresses"][0]
        except (ProviderError, LookupError) as exc:
            return [fail(self.scope, "elastic ip", f"{s.allocation_id}: {exc}",
                         "aws ec2 describe-addresses   # the allocation ids of this account and region")]
        if addr.get("Domain", "vpc") != "vpc":
            return [fail(self.scope, "elastic ip", f"{s.allocation_id} is an EC2-Classic address",
                         "allocate one for the VPC: aws ec2 allocate-address --domain vpc")]
        return [ok(self.scope, "elastic ip", f"{s.allocation_id} = {addr.get('PublicIp')}, now at "
                                             f"{addr.get('NetworkInterfaceId') or 'nothing'}")]

    async def _route_tables(self, eni: dict[str, Any]) -> list[Finding]:
        s = self.p.settings
        out = []
        try:
            found = await self.p._call("describe_route_tables", RouteTableIds=list(s.route_tables))
            tables = {t["RouteTableId"]: t for t in found.get("RouteTables", [])}
        except ProviderError as exc:
            return [fail(self.scope, "route tables", f"{' '.join(s.route_tables)}: {exc}",
                         "aws ec2 describe-route-tables   # the ids of this VPC")]
        for table_id in s.route_tables:
            table = tables.get(table_id)
            if table is None:
                out.append(fail(self.scope, "route tables", f"{table_id} not found", "fix route_tables"))
            elif table.get("VpcId") != eni.get("VpcId"):
                out.append(fail(self.scope, "route tables", f"{table_id} is in {table.get('VpcId')}, this ENI in "
                                f"{eni.get('VpcId')}", "list the route tables of this node's VPC"))
            else:
                out.append(ok(self.scope, "route tables", f"{table_id} in {table.get('VpcId')}"))
        eni_id = eni.get("NetworkInterfaceId")
        if eni.get("SourceDestCheck", True):
            out.append(fail(self.scope, "source/dest check", f"on for {eni_id}: packets to the VIP routed here "
                            "are dropped", f"aws ec2 modify-network-interface-attribute --network-interface-id "
                            f"{eni_id} --no-source-dest-check (Terraform: source_dest_check = false)"))
        else:
            out.append(ok(self.scope, "source/dest check", f"off for {eni_id}"))
        return out


def _snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")


def _resource(kwargs: dict[str, Any]) -> str:
    parts = [kwargs[k] for k in ("RouteTableId", "AllocationId", "NetworkInterfaceId") if k in kwargs]
    return " / ".join(parts)


def _resource_arn(p: AwsProvider, kwargs: dict[str, Any]) -> str:
    assert p.target is not None
    region = p.target.region
    if "RouteTableId" in kwargs:
        return f"arn:aws:ec2:{region}:{{account}}:route-table/{kwargs['RouteTableId']}"
    if "AllocationId" in kwargs:
        return f"arn:aws:ec2:{region}:{{account}}:elastic-ip/{kwargs['AllocationId']}"
    return "*"  # EC2's Describe* take no resource


def _policy_fix(action: str, resource: str) -> str:
    return (f'add to the instance role\'s policy: {{"Effect": "Allow", "Action": "ec2:{action}", '
            f'"Resource": "{resource.replace("{account}", "ACCOUNT")}"}}\n'
            "(IAM changes take a few seconds to apply everywhere: run doctor again after a minute)")


def _principal_arn(caller: str) -> str:
    """The IAM role (or user) behind STS's caller ARN: an instance profile's credentials are an
    assumed-role session, arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION."""
    if ":assumed-role/" in caller:
        head, _, rest = caller.partition(":assumed-role/")
        return head.replace(":sts:", ":iam:") + ":role/" + rest.split("/")[0]
    return caller


def _allows_vrrp(rule: dict[str, Any], src_ip: str, src_groups: set[str]) -> bool:
    if str(rule.get("IpProtocol")) not in ("112", "-1", "vrrp"):
        return False
    addr = ip_address(src_ip)
    for r in rule.get("IpRanges", []):
        try:
            if addr in ip_network(r.get("CidrIp", ""), strict=False):
                return True
        except ValueError:
            continue
    return any(pair.get("GroupId") in src_groups for pair in rule.get("UserIdGroupPairs", []))
