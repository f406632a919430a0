"""Create the project bucket the way data in it should be kept: encrypted, private, TLS only,
versioned (an overwrite or delete can be undone for NONCURRENT_EXPIRY_DAYS)."""

from __future__ import annotations

import json

STAGING_EXPIRY_DAYS = 7
NONCURRENT_EXPIRY_DAYS = 30  # how long an overwritten or deleted object can be recovered


def tls_only_policy(bucket: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def init_bucket(s3_client, bucket: str, region: str, staging_prefix: str = "emr_staging") -> list[str]:
    """Create (or bring up to standard) ``bucket`` in ``region``; returns what was done."""
    done = []
    try:
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3_client.create_bucket(Bucket=bucket, **kwargs)
        done.append(f"created s3://{bucket} in {region}")
    except s3_client.exceptions.BucketAlreadyOwnedByYou:
        done.append(f"s3://{bucket} already exists and is yours")
    s3_client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    done.append("public access blocked")
    s3_client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
        },
    )
    done.append("default encryption SSE-S3 (AES256)")
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    done.append("versioning enabled")
    s3_client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))
    done.append("bucket policy: TLS only")
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-step-launcher-staging",
                    "Status": "Enabled",
                    "Filter": {"Prefix": staging_prefix.strip("/") + "/"},
                    "Expiration": {"Days": STAGING_EXPIRY_DAYS},
                    # staging is scratch: its old versions are not worth keeping the 30 days the rule below gives
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
                {
                    # Versioning keeps every overwritten or deleted object: without this rule they would be
                    # kept (and billed) forever.
                    "ID": "expire-noncurrent-versions",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_EXPIRY_DAYS},
                    "Expiration": {"ExpiredObjectDeleteMarker": True},  # then drop the markers left alone
                },
            ]
        },
    )
    done.append(
        f"lifecycle: {staging_prefix}/ expires after {STAGING_EXPIRY_DAYS} days; "
        f"noncurrent versions after {NONCURRENT_EXPIRY_DAYS} days"
    )
    return done
