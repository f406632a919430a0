"""An AWS account on moto the way `emr up` expects one (docs/emr.md, "Network"): EMR block public
access on, and a private subnet (its own VPC, no public IPs) tagged for EMR's service policy."""

EMR_MANAGED_TAG = {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}


def private_subnet(moto, cidr: str = "10.42.0.0/16", tagged: bool = True) -> str:
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    tags = [{"ResourceType": "subnet", "Tags": [EMR_MANAGED_TAG]}] if tagged else []
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"), TagSpecifications=tags)
    return subnet["Subnet"]["SubnetId"]


def prepare_account(moto) -> str:
    """Block public access on; returns a private subnet's id for FRUITS_EMR_SUBNET_IDS."""
    moto.client("emr").put_block_public_access_configuration(
        BlockPublicAccessConfiguration={"BlockPublicSecurityGroupRules": True}
    )
    return private_subnet(moto)
