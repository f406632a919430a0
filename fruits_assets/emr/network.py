"""Where the cluster runs and who can reach it, settled by `emr up` before RunJobFlow:

- EMR block public access must be on in the account (it stops any security group rule that opens
  a port other than 22 to 0.0.0.0/0 or ::/0), unless FRUITS_EMR_ALLOW_BLOCK_PUBLIC_ACCESS_OFF=1;
- private subnets (FRUITS_EMR_SUBNET_IDS: one VPC, not the default one, no public IPs on launch),
  or the default VPC only when FRUITS_EMR_ALLOW_DEFAULT_VPC=1;
- EMR-managed security groups given explicitly: the settings' (checked: no ingress from anywhere)
  or created here without any ingress rule; EMR adds the rules between its nodes itself.

Subnets and security groups must carry for-use-with-amazon-emr-managed-policies=true, the tag
AmazonEMRServicePolicy_v2 (the service role, emr/roles.py) requires; the groups made here carry it."""

from __future__ import annotations

import dataclasses

from .. import settings
from .spec import EMR_MANAGED_TAG, PROJECT_TAG, ClusterSpec

OPEN_CIDRS = ("0.0.0.0/0", "::/0")
# Shown by `emr plan` where `emr up` decides (it calls AWS; the plan does not).
CREATED_BY_UP = "<created by emr up: {}>"
DEFAULT_VPC_SUBNETS = "<the default VPC's subnets, found by emr up>"


def check_block_public_access(emr_client, spec: ClusterSpec) -> None:
    """Refuse an account whose EMR block public access is off (or was never set)."""
    config = emr_client.get_block_public_access_configuration().get("BlockPublicAccessConfiguration", {})
    if not config.get("BlockPublicSecurityGroupRules") and not spec.allow_public_access_off:
        raise settings.SettingsError(
            f"EMR block public access is off in {spec.region}: turn it on "
            "(aws emr put-block-public-access-configuration --block-public-access-configuration "
            "BlockPublicSecurityGroupRules=true) or set FRUITS_EMR_ALLOW_BLOCK_PUBLIC_ACCESS_OFF=1"
        )


def _tags(name: str) -> list[dict]:
    return [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in (PROJECT_TAG, EMR_MANAGED_TAG)]


def _has_managed_tag(resource: dict) -> bool:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(EMR_MANAGED_TAG[0]) == EMR_MANAGED_TAG[1]


def _tag_hint(resource_id: str) -> str:
    key, value = EMR_MANAGED_TAG
    return (
        f"{resource_id} lacks the tag {key}={value} that EMR's service policy requires "
        f"(aws ec2 create-tags --resources {resource_id} --tags Key={key},Value={value})"
    )


def open_ingress(group: dict) -> list[str]:
    """The ingress rules of a described security group that admit the whole internet."""
    found = []
    for rule in group.get("IpPermissions", []):
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])] + [
            r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])
        ]
        found += [f"{rule.get('IpProtocol')} {rule.get('FromPort', '')} from {c}" for c in cidrs if c in OPEN_CIDRS]
    return found


def _subnets(ec2_client, spec: ClusterSpec) -> tuple[list[dict], dict]:
    """The subnets to use and their VPC, or a one-line refusal."""
    if not spec.subnet_ids:
        if not spec.allow_default_vpc:
            raise settings.SettingsError(
                "FRUITS_EMR_SUBNET_IDS is not set: give private subnets (or FRUITS_EMR_ALLOW_DEFAULT_VPC=1 "
                "for the default VPC's public ones)"
            )
        vpcs = ec2_client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise settings.SettingsError(f"no default VPC in {spec.region}: set FRUITS_EMR_SUBNET_IDS")
        subnets = ec2_client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
        return sorted(subnets, key=lambda s: s["SubnetId"]), vpcs[0]
    subnets = ec2_client.describe_subnets(SubnetIds=list(spec.subnet_ids))["Subnets"]
    vpc_ids = {s["VpcId"] for s in subnets}
    if len(vpc_ids) != 1:
        raise settings.SettingsError(f"FRUITS_EMR_SUBNET_IDS span {len(vpc_ids)} VPCs: EMR needs them in one")
    [vpc] = ec2_client.describe_vpcs(VpcIds=list(vpc_ids))["Vpcs"]
    if vpc.get("IsDefault") and not spec.allow_default_vpc:
        raise settings.SettingsError(
            f"FRUITS_EMR_SUBNET_IDS are in the default VPC {vpc['VpcId']}: use private subnets "
            "(or FRUITS_EMR_ALLOW_DEFAULT_VPC=1)"
        )
    if not vpc.get("IsDefault"):
        public = [s["SubnetId"] for s in subnets if s.get("MapPublicIpOnLaunch")]
        if public:
            raise settings.SettingsError(
                f"FRUITS_EMR_SUBNET_IDS: {', '.join(public)} gives instances public IPs: use private subnets "
                "(with a NAT gateway or VPC endpoints for S3, EMR and SSM)"
            )
    return [subnets[[s["SubnetId"] for s in subnets].index(i)] for i in spec.subnet_ids], vpc


def _group(ec2_client, vpc_id: str, name: str, description: str, done: list[str]) -> str:
    """The project's security group ``name`` in the VPC: found (from an earlier `emr up`) or created
    with no ingress rule; default egress (the nodes reach S3, EMR and SSM)."""
    found = ec2_client.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}]
    )["SecurityGroups"]
    if found:
        return found[0]["GroupId"]
    group_id = ec2_client.create_security_group(
        GroupName=name,
        Description=description,
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(name)}],
    )["GroupId"]
    done.append(f"created security group {name} ({group_id}) in {vpc_id}, no ingress rule")
    return group_id


def resolve_network(ec2_client, spec: ClusterSpec) -> tuple[ClusterSpec, list[str]]:
    """The spec with subnets and the three EMR-managed security groups filled in (a public subnet
    of the default VPC takes no service access group: EMR uses it in private subnets only)."""
    subnets, vpc = _subnets(ec2_client, spec)
    untagged = [s["SubnetId"] for s in subnets if not _has_managed_tag(s)]
    if untagged:
        raise settings.SettingsError(_tag_hint(untagged[0]))
    private = not vpc.get("IsDefault")
    done: list[str] = []
    service: str | None = None
    if spec.master_sg and spec.slave_sg and spec.service_sg:
        master, slave = spec.master_sg, spec.slave_sg
        service = spec.service_sg if private else None
        for group in ec2_client.describe_security_groups(GroupIds=[master, slave, *([service] if service else [])])[
            "SecurityGroups"
        ]:
            if group["VpcId"] != vpc["VpcId"]:
                raise settings.SettingsError(f"security group {group['GroupId']} is not in the subnets' VPC")
            if not _has_managed_tag(group):
                raise settings.SettingsError(_tag_hint(group["GroupId"]))
            if open_ingress(group):
                raise settings.SettingsError(
                    f"security group {group['GroupId']} admits the internet ({open_ingress(group)[0]}): "
                    "remove that rule"
                )
    else:
        vpc_id, prefix = vpc["VpcId"], spec.name
        master = _group(ec2_client, vpc_id, f"{prefix}-emr-master", "fruits-assets EMR master", done)
        slave = _group(ec2_client, vpc_id, f"{prefix}-emr-core-task", "fruits-assets EMR core/task", done)
        if private:
            service = _group(ec2_client, vpc_id, f"{prefix}-emr-service-access", "fruits-assets EMR service", done)
    resolved = dataclasses.replace(
        spec, subnet_ids=tuple(s["SubnetId"] for s in subnets), master_sg=master, slave_sg=slave, service_sg=service
    )
    return resolved, done


def network_instances(spec: ClusterSpec) -> dict:
    """The RunJobFlow Instances keys for the network: explicit subnets and security groups, or
    (in `emr plan`) placeholders for what `emr up` finds or creates."""
    placeholder = DEFAULT_VPC_SUBNETS if spec.allow_default_vpc else "<set FRUITS_EMR_SUBNET_IDS>"
    out = {
        "Ec2SubnetIds": list(spec.subnet_ids) or [placeholder],
        "EmrManagedMasterSecurityGroup": spec.master_sg or CREATED_BY_UP.format(f"{spec.name}-emr-master"),
        "EmrManagedSlaveSecurityGroup": spec.slave_sg or CREATED_BY_UP.format(f"{spec.name}-emr-core-task"),
    }
    if spec.service_sg or not spec.allow_default_vpc:
        out["ServiceAccessSecurityGroup"] = spec.service_sg or CREATED_BY_UP.format(f"{spec.name}-emr-service-access")
    return out
