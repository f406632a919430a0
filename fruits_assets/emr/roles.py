"""The cluster's own IAM roles, in place of EMR's defaults: EMR_EC2_DefaultRole gives every node
s3:*, dynamodb:*, sqs:* and sns:* on every resource of the account (and AWS is retiring it), and
whoever may add a step acts with those rights. Here:

- the instance role (and its instance profile, same name), which Spark, the bootstrap action and
  the steps run with: the project bucket only, each prefix with what the nodes do there, the KMS
  key that encrypts their disks, and Session Manager's channels (the documented way in);
- the service role EMR itself acts with: AWS's scoped AmazonEMRServicePolicy_v2 (it touches only
  subnets and security groups tagged for-use-with-amazon-emr-managed-policies=true, which
  emr/network.py checks or sets) plus passing the instance role to EC2 and the EBS key grants.

No wildcard action anywhere; Resource "*" only for the actions in STAR_RESOURCE_ACTIONS, each with
why. `fruits-assets emr roles` prints them; `emr roles --create` / `emr up --create-roles` create
or update them (an identity with the IAM rights of creator_policy: not the operator's)."""

from __future__ import annotations

import json
from typing import Any

from .. import settings
from .spec import (
    BOOTSTRAP_PREFIX,
    JUPYTER_PREFIX,
    JUPYTERHUB_SECRET_KEY,
    KMS_KEY_PLACEHOLDER,
    LOG_PREFIX,
    PROJECT_TAG,
    ClusterSpec,
)

SERVICE_POLICY_V2 = "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
RAW_PREFIX = "raw"
ASSETS_PREFIX = "assets"

# The only actions granted on Resource "*": AWS defines no resource type for them, so IAM accepts
# nothing narrower (Service Authorization Reference, "Amazon Session Manager Message Gateway
# Service"). Session Manager's agent opens its control and data channels with them; without them
# there is no SSM port forwarding to JupyterHub (docs/emr.md, "Reaching the cluster").
STAR_RESOURCE_ACTIONS = {
    "ssmmessages:CreateControlChannel": "Session Manager channel: no resource type exists",
    "ssmmessages:CreateDataChannel": "Session Manager channel: no resource type exists",
    "ssmmessages:OpenControlChannel": "Session Manager channel: no resource type exists",
    "ssmmessages:OpenDataChannel": "Session Manager channel: no resource type exists",
}

# Key usage the nodes need for LUKS local-disk encryption (EMR asks KMS for data keys with the
# instance profile), and EMR needs for EBS encryption (the service role, with grants for EC2).
KMS_USE = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
KMS_EBS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
]
KMS_GRANTS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]


def _trust(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def _kms_resource(spec: ClusterSpec) -> tuple[str, dict]:
    """The key as IAM can name it: a key ARN as is; an alias ARN does not match key operations in
    IAM, so any key of that account and region carrying the alias (kms:ResourceAliases)."""
    arn = spec.kms_key_arn or KMS_KEY_PLACEHOLDER
    if ":alias/" not in arn:
        return arn, {}
    prefix, alias = arn.split(":alias/", 1)
    return f"{prefix}:key/*", {"ForAnyValue:StringEquals": {"kms:ResourceAliases": f"alias/{alias}"}}


def _statement(sid: str, actions: list[str], resources: str | list[str], condition: dict | None = None) -> dict:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def instance_role_policy(spec: ClusterSpec) -> dict:
    """What the nodes may do: read images (raw/) and the bootstrap files (emr/bootstrap/), read and
    write outputs (assets/) and the step launcher's staging (its prefix), write logs (emr/logs/);
    with JupyterHub, its notebooks (jupyter/) and the one-shot admin password object."""
    bucket = f"arn:aws:s3:::{spec.bucket}"
    staging = spec.staging_prefix
    read = [RAW_PREFIX, BOOTSTRAP_PREFIX]
    read_write = [ASSETS_PREFIX, staging] + ([JUPYTER_PREFIX] if spec.jupyterhub else [])
    listed = [*read, *read_write, LOG_PREFIX]
    write_ops = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    statements = [
        _statement("NodesLocateTheBucket", ["s3:GetBucketLocation"], bucket),
        # Listing is scoped by prefix too: the rest of the bucket is not even visible.
        _statement(
            "NodesListProjectPrefixes",
            ["s3:ListBucket"],
            bucket,
            {"StringLike": {"s3:prefix": [p for prefix in listed for p in (prefix, f"{prefix}/*")]}},
        ),
        _statement("NodesReadImagesAndBootstrap", ["s3:GetObject"], [f"{bucket}/{p}/*" for p in read]),
        _statement(
            "NodesReadWriteOutputsAndStaging", ["s3:GetObject", *write_ops], [f"{bucket}/{p}/*" for p in read_write]
        ),
        _statement("NodesWriteLogs", ["s3:PutObject", "s3:AbortMultipartUpload"], f"{bucket}/{LOG_PREFIX}/*"),
    ]
    if spec.tls_certs_s3:  # in-transit TLS: every node reads the certificate zip
        statements.append(
            _statement("NodesReadTlsCertificates", ["s3:GetObject"], f"arn:aws:s3:::{spec.tls_certs_s3[5:]}")
        )
    if spec.jupyterhub:  # the password step reads the object once, then deletes that version for good
        statements.append(
            _statement(
                "NodesTakeTheJupyterHubPasswordOnce",
                ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion"],
                f"{bucket}/{JUPYTERHUB_SECRET_KEY}",
            )
        )
    key, key_condition = _kms_resource(spec)
    statements += [
        _statement("NodesUseTheDiskEncryptionKey", KMS_USE, key, key_condition),
        # Session Manager (docs/emr.md, "Reaching the cluster"): the agent registers its instance
        # (this region's instances only), then opens channels (no resource type exists for those).
        _statement(
            "NodesRegisterWithSessionManager",
            ["ssm:UpdateInstanceInformation"],
            f"arn:aws:ec2:{spec.region}:*:instance/*",
        ),
        _statement("NodesOpenSessionManagerChannels", sorted(STAR_RESOURCE_ACTIONS), "*"),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def service_role_policy(spec: ClusterSpec) -> dict:
    """What EMR needs beyond AmazonEMRServicePolicy_v2: v2 passes only the role named
    EMR_EC2_DefaultRole, so passing this instance role to EC2 is granted here; and EBS encryption
    with the project's key (EMR creates grants for the volumes it attaches)."""
    key, key_condition = _kms_resource(spec)
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement(
                "EmrPassesTheInstanceRoleToEc2Only",
                ["iam:PassRole"],
                f"arn:aws:iam::*:role/{spec.instance_profile}",
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
            _statement("EmrEncryptsEbsWithTheProjectKey", KMS_EBS, key, key_condition),
            _statement(
                "EmrGrantsTheKeyToAwsResourcesOnly",
                KMS_GRANTS,
                key,
                {**key_condition, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ],
    }


def creator_policy(spec: ClusterSpec) -> dict:
    """The IAM rights `emr roles --create` needs: these two roles and the instance profile only.
    Not part of the operator's policy: whoever may write a role's policy and pass it can give
    itself any right through a cluster."""
    roles = [f"arn:aws:iam::*:role/{spec.service_role}", f"arn:aws:iam::*:role/{spec.instance_profile}"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement(
                "CreatorKeepsTheProjectRoles",
                [
                    "iam:GetRole",
                    "iam:CreateRole",
                    "iam:TagRole",
                    "iam:UpdateAssumeRolePolicy",
                    "iam:PutRolePolicy",
                    "iam:GetRolePolicy",
                    "iam:ListAttachedRolePolicies",
                ],
                roles,
            ),
            _statement(
                "CreatorAttachesOnlyTheV2ServicePolicy",
                ["iam:AttachRolePolicy"],
                roles[0],
                {"ArnEquals": {"iam:PolicyARN": SERVICE_POLICY_V2}},
            ),
            _statement(
                "CreatorKeepsTheInstanceProfile",
                [
                    "iam:GetInstanceProfile",
                    "iam:CreateInstanceProfile",
                    "iam:TagInstanceProfile",
                    "iam:AddRoleToInstanceProfile",
                ],
                f"arn:aws:iam::*:instance-profile/{spec.instance_profile}",
            ),
            _statement(
                "CreatorPutsTheInstanceRoleInItsProfile",
                ["iam:PassRole"],
                roles[1],
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
        ],
    }


def roles_document(spec: ClusterSpec) -> dict:
    """Everything `emr roles` prints: each role with its trust, inline and managed policies."""
    return {
        "InstanceRole": {
            "RoleName": spec.instance_profile,
            "InstanceProfileName": spec.instance_profile,
            "AssumeRolePolicyDocument": _trust("ec2.amazonaws.com"),
            "InlinePolicy": instance_role_policy(spec),
            "ManagedPolicies": [],
        },
        "ServiceRole": {
            "RoleName": spec.service_role,
            "AssumeRolePolicyDocument": _trust("elasticmapreduce.amazonaws.com"),
            "InlinePolicy": service_role_policy(spec),
            "ManagedPolicies": [SERVICE_POLICY_V2],
        },
        "CreatorPolicy": creator_policy(spec),
    }


def _tags() -> list[dict]:
    return [{"Key": PROJECT_TAG[0], "Value": PROJECT_TAG[1]}]


def _ensure_role(iam_client, name: str, trust: dict, description: str) -> str:
    try:
        iam_client.get_role(RoleName=name)
    except iam_client.exceptions.NoSuchEntityException:
        iam_client.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Description=description, Tags=_tags()
        )
        return f"created role {name}"
    iam_client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    return f"role {name} exists: trust policy brought up to date"


def ensure_roles(iam_client, spec: ClusterSpec) -> list[str]:
    """Create or update both roles and the instance profile; returns what was done. Idempotent:
    inline policies are replaced by the current settings' (bucket, prefixes, key, JupyterHub)."""
    if not spec.kms_key_arn:  # the placeholder must never reach a policy in AWS
        raise settings.SettingsError("FRUITS_EMR_KMS_KEY_ARN is not set (the roles may use that key only)")
    doc = roles_document(spec)
    done = []
    for role, about in (
        (doc["InstanceRole"], "fruits-assets EMR nodes: project bucket prefixes, disk key, Session Manager"),
        (doc["ServiceRole"], "fruits-assets EMR service role: AmazonEMRServicePolicy_v2 and the project key"),
    ):
        name = role["RoleName"]
        done.append(_ensure_role(iam_client, name, role["AssumeRolePolicyDocument"], about))
        iam_client.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(role["InlinePolicy"]))
        done.append(f"inline policy {name} put on {name}")
        attached = {p["PolicyArn"] for p in iam_client.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        for arn in role["ManagedPolicies"]:
            if arn not in attached:
                iam_client.attach_role_policy(RoleName=name, PolicyArn=arn)
                done.append(f"attached {arn} to {name}")
    profile = spec.instance_profile
    try:
        roles = iam_client.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
    except iam_client.exceptions.NoSuchEntityException:
        iam_client.create_instance_profile(InstanceProfileName=profile, Tags=_tags())
        roles = []
        done.append(f"created instance profile {profile}")
    if profile not in {r["RoleName"] for r in roles}:
        iam_client.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=profile)
        done.append(f"added role {profile} to instance profile {profile}")
    return done
