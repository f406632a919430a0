"""An AWS account on moto the way `emr up` expects one (docs/emr.md, "Network"): EMR block public
access on, and a private subnet (its own VPC, no public IPs) tagged for EMR's service policy."""

import subprocess
import sys
from pathlib import Path

from fruits_assets_tests.conftest import RUN_DIR, run_env

CLI = str(Path(sys.executable).with_name("fruits-assets"))
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


def emr_env(tmp_path, aws, bucket: str, region: str, kms_key: str, **extra) -> dict:
    """The environment of a `fruits-assets emr ...` call on moto: the emr deployment, the bucket,
    the key and the prepared subnet; no other FRUITS_EMR_* from the caller's environment.
    ``extra`` set to None removes a variable."""
    env = run_env(
        tmp_path,
        tmp_path,
        "random",
        FRUITS_DEPLOYMENT="emr",
        FRUITS_S3_BUCKET=bucket,
        FRUITS_AWS_REGION=region,
        FRUITS_EMR_KMS_KEY_ARN=kms_key,
        FRUITS_EMR_SUBNET_IDS=aws.subnet,
        **aws.env,
    )
    for name in list(env):
        if name.startswith("FRUITS_EMR_") and name not in ("FRUITS_EMR_KMS_KEY_ARN", "FRUITS_EMR_SUBNET_IDS"):
            env.pop(name)
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def cli(args, env):
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300, cwd=RUN_DIR)
