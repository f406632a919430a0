"""``fruits-assets`` command line: bucket setup and the EMR cluster's lifecycle.

fruits-assets s3 init
fruits-assets emr plan [--json]
fruits-assets emr up [--create-roles] | status | down
fruits-assets emr policy
fruits-assets emr roles [--json] [--create]
fruits-assets emr notebook [PATH]
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import settings


def _clients(region: str):
    import boto3

    return boto3.client("emr", region_name=region), boto3.client("s3", region_name=region)


def _client(service: str, region: str):
    import boto3

    return boto3.client(service, region_name=region)


def _cluster_id(args) -> str:
    value = args.cluster_id or settings.value("FRUITS_EMR_CLUSTER_ID")
    if not value:
        raise settings.SettingsError("FRUITS_EMR_CLUSTER_ID is not set (or pass --cluster-id)")
    return value


def cmd_s3_init(args) -> int:
    from ..emr.bucket import init_bucket

    region = settings.aws_region(args.allow_non_eu_region or None)
    bucket = settings.s3_bucket()
    _, s3 = _clients(region)
    for line in init_bucket(s3, bucket, region, settings.emr_staging_prefix()):
        print(line)
    return 0


def cmd_emr_plan(args) -> int:
    from ..emr.cluster import run_job_flow_request
    from ..emr.costs import cost_summary
    from ..emr.security import security_configuration, security_configuration_name
    from ..emr.spec import ClusterSpec

    spec = ClusterSpec.from_env(args.allow_non_eu_region or None)
    request = run_job_flow_request(spec)
    cost = cost_summary(request, spec)
    # The plan holds no secret: JupyterHub's password travels through S3, never in the request.
    sec = {"Name": security_configuration_name(spec), "SecurityConfiguration": security_configuration(spec)}
    if not spec.kms_key_arn:
        print(
            "warning: FRUITS_EMR_KMS_KEY_ARN is not set: the plan shows a placeholder key and `emr up` will refuse",
            file=sys.stderr,
        )
    if not spec.subnet_ids and not spec.allow_default_vpc:
        print(
            "warning: FRUITS_EMR_SUBNET_IDS is not set: the plan shows a placeholder subnet and `emr up` will refuse "
            "(private subnets, or FRUITS_EMR_ALLOW_DEFAULT_VPC=1)",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({"SecurityConfiguration": sec, "RunJobFlow": request, "estimated_cost": cost}, indent=2))
        return 0
    print(f"security configuration {sec['Name']} (created by `emr up` if missing):")
    print(json.dumps(sec["SecurityConfiguration"], indent=2))
    print("\nRunJobFlow request:")
    print(json.dumps(request, indent=2))
    print(
        f"\nestimated cost (USD/hour, {spec.region}): {cost['at_start']['usd_per_hour']} at start, "
        f"{cost['at_max_scale']['usd_per_hour']} at {spec.max_units} units with Spot task nodes "
        f"({cost['at_max_scale_without_spot']['usd_per_hour']} if they were on-demand)"
    )
    for f in cost["featurize"]:
        print(
            f"featurize {f['images']:,} images at {spec.max_units} units ({f['executor_vcpus']} executor vCPUs, "
            f"~{f['images_per_s']:,} images/s): ~{f['wall_s'] / 60:.0f} min, ~${f['usd_spot']} with Spot task nodes, "
            f"~${f['usd_on_demand']} on-demand (S3 requests ${f['usd_s3_requests']}; listing ${f['usd_listing']} or an "
            f"inventory report ${f['usd_inventory_report']})"
        )
    print(cost["featurize"][0]["assumption"])
    print(cost["at_start"]["price_table"])
    return 0


def cmd_emr_up(args) -> int:
    from ..emr.cluster import create_cluster
    from ..emr.spec import ClusterSpec

    spec = ClusterSpec.from_env(args.allow_non_eu_region or None)
    emr, s3 = _clients(spec.region)
    if args.create_roles:
        from ..emr.roles import ensure_roles

        for line in ensure_roles(_client("iam", spec.region), spec):
            print(line, file=sys.stderr)
    cluster_id = create_cluster(
        emr,
        s3,
        spec,
        wait=not args.no_wait,
        poll_s=args.poll_seconds,
        ec2_client=_client("ec2", spec.region),
        report=lambda line: print(line, file=sys.stderr),
    )
    print(cluster_id)
    print(f"export FRUITS_EMR_CLUSTER_ID={cluster_id}", file=sys.stderr)
    return 0


def cmd_emr_notebook(args) -> int:
    from pathlib import Path

    from ..emr.jupyterhub import push_notebook
    from ..emr.spec import ClusterSpec

    path = Path(args.path)
    if not path.is_file():
        raise settings.SettingsError(f"no notebook at {path} (run from the repository root, or pass its path)")
    spec = ClusterSpec.from_env(args.allow_non_eu_region or None)
    _, s3 = _clients(spec.region)
    print(
        f"{push_notebook(s3, spec, path.read_bytes(), path.name, force=args.force)}: open it in JupyterHub "
        f"(kernel 'Python 3 (fruits-assets)')"
    )
    return 0


def cmd_emr_policy(args) -> int:
    from ..emr.security import operator_policy
    from ..emr.spec import ClusterSpec

    print(json.dumps(operator_policy(ClusterSpec.from_env(args.allow_non_eu_region or None)), indent=2))
    return 0


def cmd_emr_roles(args) -> int:
    from ..emr.roles import ensure_roles, roles_document
    from ..emr.spec import ClusterSpec

    spec = ClusterSpec.from_env(args.allow_non_eu_region or None)
    if args.create:
        for line in ensure_roles(_client("iam", spec.region), spec):
            print(line)
        return 0
    doc = roles_document(spec)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for key in ("InstanceRole", "ServiceRole"):
        role = doc[key]
        print(f"{key} {role['RoleName']} (trusts {role['AssumeRolePolicyDocument']['Statement'][0]['Principal']})")
        for arn in role["ManagedPolicies"]:
            print(f"  managed policy {arn}")
        print(json.dumps(role["InlinePolicy"], indent=2))
    print("\nIAM rights to create them (`emr roles --create`; not the operator's):")
    print(json.dumps(doc["CreatorPolicy"], indent=2))
    return 0


def cmd_emr_status(args) -> int:
    from ..emr.cluster import cluster_state

    emr, _ = _clients(settings.aws_region(args.allow_non_eu_region or None))
    print(json.dumps(cluster_state(emr, _cluster_id(args)), indent=2, default=str))
    return 0


def cmd_emr_down(args) -> int:
    from ..emr.cluster import terminate_cluster

    cluster_id = _cluster_id(args)
    emr, _ = _clients(settings.aws_region(args.allow_non_eu_region or None))
    terminate_cluster(emr, cluster_id)
    print(f"terminating {cluster_id}")
    return 0


def _io_manager():
    from ..definitions import build_definitions
    from ..defs.io_manager import TableIOManager

    io = (build_definitions().resources or {})["io_manager"]
    assert isinstance(io, TableIOManager)
    return io


def cmd_gc(args) -> int:
    """Remove files no retained table version references (uncommitted parts of failed or killed
    runs, versions beyond FRUITS_KEEP_VERSIONS, unreferenced figures, the old layout's folders)
    once older than the minimum age; the same upkeep every run starts with."""
    from ..names import ASSETS
    from ..storage.upkeep import collect

    io = _io_manager()
    age = io.min_age_hours if args.min_age_hours is None else args.min_age_hours
    collected = collect(io.lake, tuple(ASSETS), io.keep_versions, age)
    print(f"tables under {io.lake.root}")
    print(f"{collected.summary()} (kept: the last {io.keep_versions} versions; removed only files older than {age} h)")
    for line in collected.removed:
        print(f"  removed {line}")
    return 0


def cmd_repair(args) -> int:
    """Drop damaged files (missing, resized, unreadable) from a table in one commit; the next
    run recomputes their rows."""
    from ..names import ASSETS
    from ..storage.upkeep import repair

    if args.asset not in ASSETS:
        raise settings.SettingsError(f"unknown asset {args.asset!r}: one of {', '.join(ASSETS)}")
    lake = _io_manager().lake
    print(f"tables under {lake.root}")
    removed = repair(lake, args.asset)
    if not removed:
        print(f"{args.asset}: every committed file is intact")
        return 0
    print(f"{args.asset}: {len(removed)} damaged files dropped from the table; the next run recomputes their rows")
    for path in removed:
        print(f"  dropped {path}")
    return 0


def cmd_home_init(args) -> int:
    from ..defs.instance import init_home

    home = args.dagster_home or settings.dagster_home()
    if not home:
        raise settings.SettingsError(
            "DAGSTER_HOME is not set (export DAGSTER_HOME=$PWD/.dagster_home, or pass --dagster-home)"
        )
    print(f"Dagster instance: {init_home(home)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fruits-assets", description="bucket and EMR cluster for fruits-assets")
    p.add_argument(
        "--allow-non-eu-region",
        action="store_true",
        help="accept a FRUITS_AWS_REGION outside the EU (also FRUITS_ALLOW_NON_EU_REGION=1)",
    )
    groups = p.add_subparsers(dest="group", required=True)
    s3 = groups.add_parser("s3").add_subparsers(dest="command", required=True)
    s3.add_parser(
        "init", help="create the bucket: encrypted, private, TLS only, versioned, lifecycle rules"
    ).set_defaults(fn=cmd_s3_init)
    home = groups.add_parser("home").add_subparsers(dest="command", required=True)
    home_init = home.add_parser(
        "init",
        help="create DAGSTER_HOME with this project's dagster.yaml (SQLite storage safe for concurrent first runs)",
    )
    home_init.add_argument("--dagster-home", help="default: $DAGSTER_HOME")
    home_init.set_defaults(fn=cmd_home_init)
    gc = groups.add_parser(
        "gc", help="remove uncommitted files of failed or killed runs and files of versions beyond retention"
    )
    gc.add_argument(
        "--min-age-hours",
        type=int,
        default=None,
        help="remove only files older than this (default FRUITS_GC_MIN_AGE_HOURS, 24): a live run's are younger",
    )
    gc.set_defaults(fn=cmd_gc)
    rep = groups.add_parser("repair", help="drop damaged files (missing, resized, unreadable) from a table")
    rep.add_argument("asset", help="the table, e.g. image_features")
    rep.set_defaults(fn=cmd_repair)
    emr = groups.add_parser("emr").add_subparsers(dest="command", required=True)
    plan = emr.add_parser(
        "plan",
        help="print the security configuration, the RunJobFlow request and its cost; "
        "calls nothing. Settings: FRUITS_EMR_KMS_KEY_ARN (local-disk/EBS key), "
        "FRUITS_EMR_TLS_CERTS_S3 (s3://.../certs.zip of PEM files: in-transit "
        "TLS), FRUITS_EMR_JUPYTERHUB=1 + FRUITS_EMR_JUPYTERHUB_PASSWORD",
    )
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(fn=cmd_emr_plan)
    up = emr.add_parser(
        "up",
        help="create the security configuration and the cluster, wait until WAITING, "
        "print its id (needs FRUITS_EMR_KMS_KEY_ARN)",
    )
    up.add_argument("--no-wait", action="store_true")
    up.add_argument(
        "--create-roles",
        action="store_true",
        help="first create or update the cluster's IAM roles (see `emr roles`; needs IAM rights)",
    )
    up.add_argument("--poll-seconds", type=float, default=30)
    up.set_defaults(fn=cmd_emr_up)
    notebook = emr.add_parser(
        "notebook",
        help="copy a notebook to the bucket's JupyterHub folder (jupyter/jovyan/), where the cluster's hub lists it",
    )
    notebook.add_argument("path", nargs="?", default="notebooks/explore.ipynb")
    notebook.add_argument("--force", action="store_true", help="replace a copy already in the bucket")
    notebook.set_defaults(fn=cmd_emr_notebook)
    emr.add_parser(
        "policy",
        help="print the operator's IAM policy (bucket, region, tagged clusters, roles)",
    ).set_defaults(fn=cmd_emr_policy)
    roles = emr.add_parser(
        "roles",
        help="print the cluster's scoped instance and service roles (in place of EMR's defaults); "
        "--create makes or updates them",
    )
    roles.add_argument("--json", action="store_true")
    roles.add_argument("--create", action="store_true", help="create or update them in IAM (idempotent)")
    roles.set_defaults(fn=cmd_emr_roles)
    for name, fn in (("status", cmd_emr_status), ("down", cmd_emr_down)):
        sub = emr.add_parser(name)
        sub.add_argument("--cluster-id")
        sub.set_defaults(fn=fn)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
