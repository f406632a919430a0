"""The cluster's security: its security configuration (encryption at rest and in transit,
IMDSv2) and the IAM policy the operator who runs it needs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .spec import EMR_MANAGED_TAG, KMS_KEY_PLACEHOLDER, PROJECT_TAG, ClusterSpec


def security_configuration(spec: ClusterSpec) -> dict:
    """The EMR security configuration document (`aws emr create-security-configuration`):
    - at rest: EMRFS writes to S3 with SSE-S3; local disks (LUKS) and EBS volumes with the KMS key
      FRUITS_EMR_KMS_KEY_ARN (EMR offers no key-less local-disk encryption);
    - in transit (optional, FRUITS_EMR_TLS_CERTS_S3): TLS between the nodes' Spark/Hadoop services,
      with the PEM certificates zipped in S3 (see settings.emr_tls_certs_s3 for what the zip holds);
    - IMDSv2 only, so a request forged through an application cannot read the instance role's
      credentials; hop limit 2 lets processes in containers (JupyterHub's) still reach it."""
    encryption: dict[str, Any] = {
        "EnableAtRestEncryption": True,
        "EnableInTransitEncryption": bool(spec.tls_certs_s3),
        "AtRestEncryptionConfiguration": {
            "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"},
            "LocalDiskEncryptionConfiguration": {
                "EncryptionKeyProviderType": "AwsKms",
                "AwsKmsKey": spec.kms_key_arn or KMS_KEY_PLACEHOLDER,
                "EnableEbsEncryption": True,
            },
        },
    }
    if spec.tls_certs_s3:
        encryption["InTransitEncryptionConfiguration"] = {
            "TLSCertificateConfiguration": {"CertificateProviderType": "PEM", "S3Object": spec.tls_certs_s3}
        }
    return {
        "EncryptionConfiguration": encryption,
        "InstanceMetadataServiceConfiguration": {
            "MinimumInstanceMetadataServiceVersion": 2,
            "HttpPutResponseHopLimit": 2,
        },
    }


def security_configuration_name(spec: ClusterSpec) -> str:
    """Named by a hash of its content: a security configuration cannot be edited, so a changed
    setting gives a new name, and one that already exists under this name is this very document."""
    doc = json.dumps(security_configuration(spec), sort_keys=True).encode()
    return f"{spec.name}-{hashlib.sha256(doc).hexdigest()[:12]}"


def ensure_security_configuration(emr_client, spec: ClusterSpec) -> str:
    """Create the security configuration the request names, unless it exists (same name, same
    content: see security_configuration_name); returns its name."""
    name = security_configuration_name(spec)
    try:
        emr_client.create_security_configuration(
            Name=name, SecurityConfiguration=json.dumps(security_configuration(spec))
        )
    except emr_client.exceptions.InvalidRequestException as exc:
        # EMR's answer when the name is taken (moto drops its message): fine if it is there now.
        try:
            emr_client.describe_security_configuration(Name=name)
        except emr_client.exceptions.InvalidRequestException:
            raise exc from None
    return name


CLUSTER_ACTIONS = (
    "DescribeCluster",
    "TerminateJobFlows",
    "AddJobFlowSteps",
    "DescribeStep",
    "ListSteps",
    "CancelSteps",
)


def operator_policy(spec: ClusterSpec) -> dict:
    """The IAM policy of whoever runs `s3 init`, `emr up|status|down` and the step launcher: the
    project bucket, clusters tagged project=fruits-assets in FRUITS_AWS_REGION, the cluster's two
    roles (emr/roles.py), each passable only to the service it is meant for, and the network checks
    of emr/network.py (describing subnets and groups; creating the project's security groups). No
    IAM writes (see roles.creator_policy) and no tagging of clusters: a principal that could
    retag a cluster could give itself access to it."""
    tag_key, tag_value = PROJECT_TAG
    bucket = f"arn:aws:s3:::{spec.bucket}"
    in_region = {"aws:RequestedRegion": spec.region}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OperatorManagesTheProjectBucket",
                "Effect": "Allow",
                "Action": [
                    "s3:CreateBucket",
                    "s3:PutBucketPolicy",
                    "s3:PutEncryptionConfiguration",
                    "s3:PutBucketPublicAccessBlock",
                    "s3:PutBucketVersioning",
                    "s3:PutLifecycleConfiguration",
                    "s3:PutBucketTagging",
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                ],
                "Resource": bucket,
            },
            {
                "Sid": "OperatorReadsAndWritesProjectObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket}/*",
            },
            {
                "Sid": "OperatorStartsOnlyProjectTaggedClusters",
                "Effect": "Allow",
                "Action": "elasticmapreduce:RunJobFlow",
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:RequestTag/{tag_key}": tag_value, **in_region}},
            },
            {
                "Sid": "OperatorActsOnlyOnProjectClusters",
                "Effect": "Allow",
                "Action": [f"elasticmapreduce:{a}" for a in CLUSTER_ACTIONS],
                "Resource": f"arn:aws:elasticmapreduce:{spec.region}:*:cluster/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}},
            },
            # These take no cluster, so no tag can scope them: region only.
            {
                "Sid": "OperatorListsClustersAndKeepsSecurityConfigurations",
                "Effect": "Allow",
                "Action": [
                    "elasticmapreduce:ListClusters",
                    "elasticmapreduce:CreateSecurityConfiguration",
                    "elasticmapreduce:DescribeSecurityConfiguration",
                    "elasticmapreduce:GetBlockPublicAccessConfiguration",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": in_region},
            },
            # EC2's Describe actions support no resource-level permission: "*" in the region.
            {
                "Sid": "OperatorChecksTheNetwork",
                "Effect": "Allow",
                "Action": ["ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeSecurityGroups"],
                "Resource": "*",
                "Condition": {"StringEquals": in_region},
            },
            {
                # Only groups that carry the project and EMR tags at creation, in the region.
                "Sid": "OperatorCreatesProjectSecurityGroups",
                "Effect": "Allow",
                "Action": "ec2:CreateSecurityGroup",
                "Resource": f"arn:aws:ec2:{spec.region}:*:security-group/*",
                "Condition": {
                    "StringEquals": {
                        f"aws:RequestTag/{tag_key}": tag_value,
                        f"aws:RequestTag/{EMR_MANAGED_TAG[0]}": EMR_MANAGED_TAG[1],
                    }
                },
            },
            {
                "Sid": "OperatorCreatesSecurityGroupsInTheRegionsVpcs",
                "Effect": "Allow",
                "Action": "ec2:CreateSecurityGroup",
                "Resource": f"arn:aws:ec2:{spec.region}:*:vpc/*",
            },
            {
                "Sid": "OperatorTagsSecurityGroupsOnlyAsItCreatesThem",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": f"arn:aws:ec2:{spec.region}:*:security-group/*",
                "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}},
            },
            {
                "Sid": "OperatorHandsTheServiceRoleToEmrOnly",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::*:role/{spec.service_role}",
                "Condition": {"StringEquals": {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}},
            },
            {
                "Sid": "OperatorHandsTheInstanceRoleToEc2Only",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::*:role/{spec.instance_profile}",
                "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            },
        ],
    }
