#!/usr/bin/env python3
"""Deploys deploy/template.yaml to moto's CloudFormation on loopback and checks, with the SDK,
that the stack holds what the template promises (issue 23).

Run by ./scripts/test after moto_server starts: the endpoint comes from SESSIONLAKE_TEST_ENDPOINT,
the function's code from SESSIONLAKE_LAMBDA_BINARY (default target/debug/sessionlake-lambda),
zipped as `bootstrap` and uploaded to a code bucket first. Prints one line per check and a last
line `deploy test: PASS` or `deploy test: FAIL (N failed)`; exits 0 or 1.

moto 5.2's CloudFormation does not create everything this template declares. Exactly:

- resource types it skips with a warning (no model): AWS::S3::BucketPolicy,
  AWS::Logs::SubscriptionFilter, AWS::CloudWatch::Alarm,
  AWS::Glue::Database, AWS::Glue::Table;
- properties it ignores: AWS::S3::Bucket takes only BucketName, BucketEncryption and Tags
  (not PublicAccessBlockConfiguration, LifecycleConfiguration, VersioningConfiguration,
  ObjectLockEnabled, OwnershipControls, NotificationConfiguration); AWS::KMS::Key always makes
  a SYMMETRIC_DEFAULT / ENCRYPT_DECRYPT key (KeySpec and KeyUsage ignored);
  AWS::Lambda::Function ignores DeadLetterConfig and Architectures.

For each of those the test applies the template's own properties, with every intrinsic
function resolved against the stack moto created (physical names, ARNs, parameters,
conditions), through the service's API, and reads them back: so the template's expressions,
names and property shapes are checked even where moto's CloudFormation cannot create them,
and each is reported as `[api]`, not as created by the stack. A moto that starts creating one
of the skipped types fails the test, so that this list stays exact.
"""

import ast
import io
import json
import os
import re
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import boto3
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "template.yaml"
DDL = ROOT / "schemas" / "ddl" / "athena.sql"
REGION = "us-east-1"
STACK = "sessionlake-test"

MOTO_SKIPPED_TYPES = {
    "AWS::S3::BucketPolicy",
    "AWS::Logs::SubscriptionFilter",
    "AWS::CloudWatch::Alarm",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
}

# The actions each role may hold (README "Pointing it at real AWS", plus what the function's
# maintenance mode and the lease need; deploy/README.md says why each is there). Exactly these.
FUNCTION_ACTIONS = {
    "logs:CreateLogStream", "logs:PutLogEvents",
    "sqs:SendMessage",
    "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
    "s3:PutObjectRetention", "s3:GetBucketObjectLockConfiguration",
    "kms:GenerateDataKey", "kms:DescribeKey", "kms:Decrypt",
    "kms:Sign", "kms:GetPublicKey",
    "logs:DescribeLogStreams", "logs:GetLogEvents",
}
ANALYST_ACTIONS = {
    "s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject",
    "kms:Decrypt", "kms:GetPublicKey", "kms:DescribeKey",
    "glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions",
}

NO_VALUE = object()


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what, detail=""):
        mark = "ok  " if ok else "FAIL"
        print(f"  {mark} {what}" + (f": {detail}" if detail and not ok else ""))
        if not ok:
            self.failed += 1
        return ok


class Resolver:
    """Resolves a template's intrinsic functions against the stack moto created."""

    def __init__(self, template, parameters, physical, attributes, pseudo):
        self.template = template
        self.parameters = parameters
        self.physical = physical
        self.attributes = attributes
        self.pseudo = pseudo
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.template["Conditions"][name])
        return self.conditions[name]

    def truth(self, node):
        (function, args), = node.items()
        if function == "Condition":
            return self.condition(args)
        if function == "Fn::Equals":
            return self.value(args[0]) == self.value(args[1])
        if function == "Fn::Not":
            return not self.truth(args[0])
        if function == "Fn::And":
            return all(self.truth(arg) for arg in args)
        if function == "Fn::Or":
            return any(self.truth(arg) for arg in args)
        raise ValueError(f"condition function {function}")

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical[name]

    def sub(self, text, local):
        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".")[0] in self.physical:
                logical, attribute = name.split(".", 1)
                return str(self.attributes(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node):
        if isinstance(node, list):
            values = [self.value(item) for item in node]
            return [value for value in values if value is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, args), = node.items()
            if key == "Ref":
                return self.ref(args)
            if key == "Fn::GetAtt":
                logical, attribute = args if isinstance(args, list) else args.split(".", 1)
                return self.attributes(logical, attribute)
            if key == "Fn::Sub":
                if isinstance(args, str):
                    return self.sub(args, {})
                local = {name: self.value(value) for name, value in args[1].items()}
                return self.sub(args[0], local)
            if key == "Fn::If":
                name, yes, no = args
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Join":
                return args[0].join(str(v) for v in self.value(args[1]))
            if key == "Fn::Select":
                return self.value(args[1])[int(self.value(args[0]))]
            if key == "Fn::Split":
                return self.value(args[1]).split(args[0])
        values = {key: self.value(value) for key, value in node.items()}
        return {key: value for key, value in values.items() if value is not NO_VALUE}


def ddl_columns(table):
    """Returns {column: type} of one CREATE TABLE of schemas/ddl/athena.sql (and dt)."""
    text = DDL.read_text()
    text = re.sub(r"--[^\n]*", "", text)
    match = re.search(
        rf"CREATE EXTERNAL TABLE IF NOT EXISTS {table} \((.*?)\)\s*PARTITIONED BY \((.*?)\)",
        text, re.S)
    body = match.group(1)
    columns = {}
    depth, current = 0, ""
    for char in body + ",":
        if char in "(<":
            depth += 1
        elif char in ")>":
            depth -= 1
        if char == "," and depth == 0:
            if current.strip():
                name, kind = current.strip().split(None, 1)
                columns[name] = kind.strip()
            current = ""
        else:
            current += char
    partition = match.group(2).split()
    return columns, {partition[0]: partition[1]}


def lifecycle_to_api(cfn):
    rules = []
    for rule in cfn["Rules"]:
        api = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
        if "NoncurrentVersionExpiration" in rule:
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])}
        if "ExpiredObjectDeleteMarker" in rule:
            api["Expiration"] = {"ExpiredObjectDeleteMarker": bool(rule["ExpiredObjectDeleteMarker"])}
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
        rules.append(api)
    return {"Rules": rules}


def notification_to_api(cfn):
    configs = []
    for lambda_config in cfn.get("LambdaConfigurations", []):
        rules = lambda_config["Filter"]["S3Key"]["Rules"]
        configs.append({
            "LambdaFunctionArn": lambda_config["Function"],
            "Events": [lambda_config["Event"]],
            "Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}},
        })
    return {"LambdaFunctionConfigurations": configs}


def check_minimal_stack(checks, session, endpoint, code_bucket, suffix, account):
    """The conditions' other side: no source but an existing bucket, no Object Lock, no role made."""
    client = lambda name: session.client(name, endpoint_url=endpoint)
    s3, cfn, iam, lam, kms = client("s3"), client("cloudformation"), client("iam"), client("lambda"), client("kms")
    existing = f"sessionlake-existing-{suffix}"
    s3.create_bucket(Bucket=existing)
    analyst = iam.create_role(RoleName=f"investigators-{suffix}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}))["Role"]["Arn"]
    stack = f"{STACK}-min-{suffix}"
    parameters = {
        "CodeBucket": code_bucket, "CreateSessionLogBucket": "false", "SessionLogBucketName": existing,
        "ObjectLockMode": "off", "AnalystRoleArn": analyst, "LakeBucketName": f"sessionlake-lake2-{suffix}",
        "GlueDatabaseName": f"sessionlake_min_{suffix}",
    }
    cfn.create_stack(StackName=stack, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    status = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    if not checks.check(status["StackStatus"] == "CREATE_COMPLETE", "stack created", status.get("StackStatusReason", "")):
        return
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]}
    absent = {"SessionLogBucket", "SessionLogBucketPolicy", "S3InvokePermission", "AnalystRole", "AnalystKeysPolicy",
              "LogsInvokePermission", "SessionLogSubscription", "CloudTrailInvokePermission", "TrailLogsInvokePermission"}
    checks.check(not absent & set(physical) and "ExistingBucketsInvokePermission" in physical,
                 "only the resources of the sources given (no session-log bucket, no analyst role)",
                 str(sorted(absent & set(physical))))
    function_name = physical["IngestFunction"]
    config = lam.get_function(FunctionName=function_name)["Configuration"]
    variables = config.get("Environment", {}).get("Variables", {})
    # moto keeps a variable whose value is AWS::NoValue, with no value; CloudFormation drops it.
    present = {name for name, value in variables.items() if value is not None}
    checks.check(variables.get("SESSIONLAKE_S3") == f"s3://{existing}/" and
                 not present & {"SESSIONLAKE_CLOUDWATCH", "SESSIONLAKE_CLOUDTRAIL"} and
                 variables.get("SESSIONLAKE_OBJECT_LOCK_MODE") == "off",
                 "function env: the existing bucket as the only source, Object Lock off", str(variables))
    permissions = json.loads(lam.get_policy(FunctionName=function_name)["Policy"])["Statement"]
    s3_arns = [p.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") for p in permissions
               if p["Principal"] == {"Service": "s3.amazonaws.com"} or p["Principal"] == "s3.amazonaws.com"]
    checks.check(s3_arns == [f"arn:aws:s3:::{existing}"], "S3 may invoke it for the existing bucket only", str(s3_arns))
    actions = set()
    role = physical["FunctionRole"]
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        for statement in statements_of(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]):
            actions.update(as_list(statement["Action"]))
    expected = FUNCTION_ACTIONS - {"s3:PutObjectRetention", "logs:DescribeLogStreams", "logs:GetLogEvents"}
    checks.check(actions == expected, "function role: no Object Lock or CloudWatch Logs source actions",
                 f"extra {sorted(actions - expected)}, missing {sorted(expected - actions)}")
    key = f"arn:aws:kms:{REGION}:{account}:key/{physical['DataKey']}"
    principals = {p for st in statements_of(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
                  for p in as_list(st["Principal"]["AWS"])}
    checks.check(analyst in principals, "data key policy names the analyst role given", str(principals))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
    command = outputs.get("SessionLogBucketNotificationCommand", "")
    checks.check(existing in command and config["FunctionArn"] in command and "CloudTrailBucketNotificationCommand" not in outputs,
                 "output SessionLogBucketNotificationCommand for the existing bucket", command)
    cfn.delete_stack(StackName=stack)


def statements_of(document):
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            # moto returns an inline role policy CloudFormation gave it as Python's repr.
            document = ast.literal_eval(document)
    statements = document["Statement"]
    # moto keeps an AWS::NoValue list item as null; CloudFormation drops it.
    return [st for st in (statements if isinstance(statements, list) else [statements]) if st is not None]


def as_list(value):
    return value if isinstance(value, list) else [value]


def main():
    endpoint = os.environ.get("SESSIONLAKE_TEST_ENDPOINT")
    if not endpoint:
        sys.exit("deploy test: SESSIONLAKE_TEST_ENDPOINT is not set (./scripts/test sets it)")
    binary = Path(os.environ.get("SESSIONLAKE_LAMBDA_BINARY", ROOT / "target" / "debug" / "sessionlake-lambda"))
    if not binary.is_file():
        sys.exit(f"deploy test: {binary} not found (cargo build --bin sessionlake-lambda)")
    started = time.monotonic()
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    client = lambda name: session.client(name, endpoint_url=endpoint)
    s3, cfn, kms, iam = client("s3"), client("cloudformation"), client("kms"), client("iam")
    lam, events, logs, sqs = client("lambda"), client("events"), client("logs"), client("sqs")
    glue, cloudwatch, sts = client("glue"), client("cloudwatch"), client("sts")
    checks = Checks()
    account = sts.get_caller_identity()["Account"]
    suffix = str(int(time.time() * 1000))[-8:]

    # What the stack expects to exist already: the code zip, a trail's bucket and the log groups.
    code_bucket = f"sessionlake-code-{suffix}"
    trail_bucket = f"sessionlake-trail-{suffix}"
    session_group = f"/aws/ssm/sessions-{suffix}"
    trail_group = f"/aws/cloudtrail/trail-{suffix}"
    for bucket in (code_bucket, trail_bucket):
        s3.create_bucket(Bucket=bucket)
    for group in (session_group, trail_group):
        logs.create_log_group(logGroupName=group)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zipped.writestr(info, binary.read_bytes())
    s3.put_object(Bucket=code_bucket, Key="sessionlake-lambda.zip", Body=archive.getvalue())
    print(f"deploy test: code zip {len(archive.getvalue()) / 1e6:.1f} MB ({binary})")

    stack = f"{STACK}-{suffix}"
    parameters = {
        "CodeBucket": code_bucket,
        "CodeKey": "sessionlake-lambda.zip",
        "CreateSessionLogBucket": "true",
        "SessionLogBucketName": "",
        "SessionLogPrefix": "ssm/",
        "SessionLogGroup": session_group,
        "CloudTrailBucketName": trail_bucket,
        "CloudTrailLogGroup": trail_group,
        "LakeBucketName": f"sessionlake-lake-{suffix}",
        "ObjectLockMode": "governance",
        "GlueDatabaseName": f"sessionlake_{suffix}",
    }
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    for name, spec in template["Parameters"].items():
        parameters.setdefault(name, str(spec.get("Default", "")))
    # A stack name per run: moto's state outlives the run only with the server, but the default
    # session-log bucket name is per account and region, so it must not clash between runs.
    parameters["SessionLogBucketName"] = f"sessionlake-logs-{suffix}"

    cfn.create_stack(
        StackName=stack,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    for _ in range(120):
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not status["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    print(f"stack {stack}: {status['StackStatus']}")
    if not checks.check(status["StackStatus"] == "CREATE_COMPLETE", "stack created",
                        status.get("StackStatusReason", "")):
        print("deploy test: FAIL (the stack was not created)")
        return 1
    outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
    resources = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    created_types = {r["LogicalResourceId"]: r["ResourceType"] for r in resources}

    pseudo = {
        "AWS::AccountId": account, "AWS::Region": REGION, "AWS::Partition": "aws",
        "AWS::StackName": stack, "AWS::StackId": status["StackId"], "AWS::URLSuffix": "amazonaws.com",
    }

    def attributes(logical, attribute):
        kind = template["Resources"][logical]["Type"]
        name = physical.get(logical)
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{name}"
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            # Not DescribeKey: see KMS_DESCRIBE_GAP.
            return f"arn:aws:kms:{REGION}:{account}:key/{name}"
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        if kind == "AWS::SQS::Queue":
            found = sqs.get_queue_attributes(QueueUrl=name, AttributeNames=["QueueArn"])
            arn = found["Attributes"]["QueueArn"]
            return {"Arn": arn, "QueueName": arn.rsplit(":", 1)[1]}[attribute]
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return f"arn:aws:logs:{REGION}:{account}:log-group:{name}:*"
        if kind == "AWS::Events::Rule" and attribute == "Arn":
            return events.describe_rule(Name=name)["Arn"]
        raise KeyError(f"{logical}.{attribute}")

    resolver = Resolver(template, parameters, physical, attributes, pseudo)

    def props(logical):
        return resolver.value(template["Resources"][logical].get("Properties", {}))

    def declared(logical):
        condition = template["Resources"][logical].get("Condition")
        return condition is None or resolver.condition(condition)

    print("what moto's CloudFormation created:")
    wanted = {name: spec["Type"] for name, spec in template["Resources"].items() if declared(name)}
    expected_created = {n: t for n, t in wanted.items() if t not in MOTO_SKIPPED_TYPES}
    missing = sorted(set(expected_created) - set(created_types))
    checks.check(not missing, f"every resource of a type moto supports is in the stack "
                 f"({len(expected_created)})", f"missing {missing}")
    surprise = sorted(n for n in created_types if wanted.get(n) in MOTO_SKIPPED_TYPES)
    checks.check(not surprise, "moto still skips exactly the types listed in MOTO_SKIPPED_TYPES",
                 f"now created: {surprise}: update the list and check them as created")

    # The function.
    function_name = physical["IngestFunction"]
    function = lam.get_function(FunctionName=function_name)
    config = function["Configuration"]
    checks.check(config["Runtime"] == "provided.al2023", "function runtime provided.al2023", config["Runtime"])
    checks.check(config["Handler"] == "bootstrap", "function handler bootstrap", config["Handler"])
    concurrency = function.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    if concurrency is None:
        concurrency = lam.get_function_concurrency(FunctionName=function_name).get("ReservedConcurrentExecutions")
    checks.check(concurrency == 1, "function reserved concurrency 1", str(concurrency))
    role_arn = attributes("FunctionRole", "Arn")
    checks.check(config["Role"] == role_arn, "function runs as FunctionRole", config["Role"])
    variables = config.get("Environment", {}).get("Variables", {})
    lake_bucket = physical["LakeBucket"]
    data_key_arn = attributes("DataKey", "Arn")
    signing_key_arn = attributes("SigningKey", "Arn")
    session_bucket = physical["SessionLogBucket"]
    expected_env = {
        "SESSIONLAKE_LAKE": f"s3://{lake_bucket}/lake",
        "SESSIONLAKE_KMS_KEY_ID": data_key_arn,
        "SESSIONLAKE_SIGNING_KEY": signing_key_arn,
        "SESSIONLAKE_S3": f"s3://{session_bucket}/ssm/",
        "SESSIONLAKE_CLOUDWATCH": session_group,
        "SESSIONLAKE_CLOUDTRAIL": f"s3://{trail_bucket}/AWSLogs/",
        "SESSIONLAKE_KEYRING": "/tmp/sessionlake/keyring.json",
        "SESSIONLAKE_OBJECT_LOCK_MODE": "governance",
        "SESSIONLAKE_OBJECT_LOCK_DAYS": "2557",
        "SESSIONLAKE_LOG": "info",
    }
    for name, value in expected_env.items():
        got = variables.get(name)
        checks.check(got is not None and str(got) == value, f"function env {name}={value}", repr(got))
    policy_text = variables.get("SESSIONLAKE_RETENTION_POLICY", "")
    try:
        policy = tomllib.loads(policy_text)
    except tomllib.TOMLDecodeError as error:
        policy = {"error": str(error)}
    checks.check(policy == {"version": 1, "default": {"commands": "7y", "raw": "1y", "action": "delete"}},
                 "function env SESSIONLAKE_RETENTION_POLICY is the retention TOML of the parameters",
                 repr(policy_text))
    unknown = sorted(set(variables) - set(expected_env) - {"SESSIONLAKE_RETENTION_POLICY"})
    checks.check(not unknown, "no other variable", str(unknown))

    permissions = json.loads(lam.get_policy(FunctionName=function_name)["Policy"])["Statement"]
    by_principal = {}
    for statement in permissions:
        principal = statement["Principal"]
        principal = principal.get("Service", principal) if isinstance(principal, dict) else principal
        by_principal.setdefault(principal, []).append(statement)
    rule_name = physical["MaintenanceRule"]
    rule_arn = events.describe_rule(Name=rule_name)["Arn"]

    def source_arn(statement):
        condition = statement.get("Condition", {})
        return condition.get("ArnLike", {}).get("AWS:SourceArn")

    s3_sources = sorted(source_arn(s) for s in by_principal.get("s3.amazonaws.com", []))
    checks.check(s3_sources == sorted([f"arn:aws:s3:::{session_bucket}", f"arn:aws:s3:::{trail_bucket}"]),
                 "S3 may invoke the function, for the session-log and trail buckets only", str(s3_sources))
    events_sources = [source_arn(s) for s in by_principal.get("events.amazonaws.com", [])]
    checks.check(events_sources == [rule_arn], "EventBridge may invoke it, for the maintenance rule only",
                 str(events_sources))
    logs_sources = sorted(source_arn(s) for s in by_principal.get("logs.amazonaws.com", []))
    checks.check(len(logs_sources) == 2, "CloudWatch Logs may invoke it, for the two log groups",
                 str(logs_sources))

    # The schedule.
    rule = events.describe_rule(Name=rule_name)
    checks.check(rule.get("ScheduleExpression") == "cron(15 3 * * ? *)", "maintenance rule schedule",
                 rule.get("ScheduleExpression"))
    targets = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    target_ok = (len(targets) == 1 and targets[0]["Arn"] == config["FunctionArn"]
                 and json.loads(targets[0].get("Input", "null")) == {"sessionlake": "maintenance"})
    checks.check(target_ok, 'maintenance rule targets the function with {"sessionlake": "maintenance"}',
                 json.dumps(targets))

    # Keys.
    checks.check(kms.get_key_rotation_status(KeyId=data_key_arn)["KeyRotationEnabled"],
                 "data key rotation on")
    analyst_arn = attributes("AnalystRole", "Arn")
    root = f"arn:aws:iam::{account}:root"

    def grants(key_arn):
        found = {}
        # moto returns the policy CloudFormation gave it as an object, not a JSON string.
        document = kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
        for statement in statements_of(document):
            for principal in as_list(statement["Principal"]["AWS"]):
                found.setdefault(principal, set()).update(as_list(statement["Action"]))
        return found

    data_grants = grants(data_key_arn)
    checks.check(data_grants.get(role_arn) == {"kms:GenerateDataKey", "kms:Decrypt"},
                 "data key policy: function GenerateDataKey/Decrypt", str(data_grants.get(role_arn)))
    checks.check(data_grants.get(analyst_arn) == {"kms:Decrypt"}, "data key policy: analyst Decrypt only",
                 str(data_grants.get(analyst_arn)))
    crypto = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:Sign", "kms:ReEncryptFrom"}
    checks.check(not (data_grants.get(root, set()) & crypto) and "kms:PutKeyPolicy" in data_grants.get(root, set()),
                 "data key policy: the account administers the key and cannot use it", str(data_grants.get(root)))
    signing_grants = grants(signing_key_arn)
    checks.check(signing_grants.get(role_arn) == {"kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"},
                 "signing key policy: function Sign/GetPublicKey/DescribeKey", str(signing_grants.get(role_arn)))
    checks.check(signing_grants.get(analyst_arn) == {"kms:GetPublicKey", "kms:DescribeKey"},
                 "signing key policy: analyst GetPublicKey/DescribeKey only", str(signing_grants.get(analyst_arn)))
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    checks.check(f"alias/{stack}-data" in aliases and f"alias/{stack}-signing" in aliases, "key aliases")

    # Roles.
    def role_actions(role_name):
        actions, resources = set(), []
        for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
            for statement in statements_of(document):
                actions.update(as_list(statement["Action"]))
                resources.extend(as_list(statement["Resource"]))
        return actions, resources

    function_actions, function_resources = role_actions(physical["FunctionRole"])
    checks.check(function_actions == FUNCTION_ACTIONS, "function role holds exactly the listed actions",
                 f"extra {sorted(function_actions - FUNCTION_ACTIONS)}, missing {sorted(FUNCTION_ACTIONS - function_actions)}")
    analyst_actions, analyst_resources = role_actions(physical["AnalystRole"])
    checks.check(analyst_actions == ANALYST_ACTIONS, "analyst role holds exactly the listed actions",
                 f"extra {sorted(analyst_actions - ANALYST_ACTIONS)}, missing {sorted(ANALYST_ACTIONS - analyst_actions)}")
    every = function_actions | analyst_actions
    checks.check(not any("*" in action for action in every), "no action with a wildcard")
    checks.check("*" not in function_resources + analyst_resources, "no role grants on Resource *")
    trust = statements_of(iam.get_role(RoleName=physical["FunctionRole"])["Role"]["AssumeRolePolicyDocument"])
    checks.check(trust[0]["Principal"] == {"Service": "lambda.amazonaws.com"}, "function role is Lambda's")

    # Logs and the dead-letter queue.
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function_name}")["logGroups"]
    checks.check(len(groups) == 1 and groups[0].get("retentionInDays") == 400,
                 "function log group with 400 days retention", str(groups))
    queue_arn = attributes("DeadLetterQueue", "Arn")

    # The lake bucket, as created (encryption is the one property moto applies).
    encryption = s3.get_bucket_encryption(Bucket=lake_bucket)["ServerSideEncryptionConfiguration"]
    checks.check(encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256",
                 "lake bucket default encryption SSE-S3")

    print("what moto's CloudFormation skips, applied from the template through the API [api]:")
    lake = props("LakeBucket")
    s3.put_public_access_block(Bucket=lake_bucket, PublicAccessBlockConfiguration=lake["PublicAccessBlockConfiguration"])
    block = s3.get_public_access_block(Bucket=lake_bucket)["PublicAccessBlockConfiguration"]
    checks.check(all(block.values()) and len(block) == 4, "[api] lake bucket blocks all public access", str(block))
    if lake.get("ObjectLockEnabled"):
        s3.put_bucket_versioning(Bucket=lake_bucket, VersioningConfiguration=lake["VersioningConfiguration"])
        s3.put_object_lock_configuration(Bucket=lake_bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
        lock = s3.get_object_lock_configuration(Bucket=lake_bucket)["ObjectLockConfiguration"]
        checks.check(lock.get("ObjectLockEnabled") == "Enabled" and "Rule" not in lock,
                     "[api] lake bucket Object Lock on, no default retention", str(lock))
        checks.check(s3.get_bucket_versioning(Bucket=lake_bucket).get("Status") == "Enabled",
                     "[api] lake bucket versioned (Object Lock needs it)")
    s3.put_bucket_lifecycle_configuration(Bucket=lake_bucket,
                                          LifecycleConfiguration=lifecycle_to_api(lake["LifecycleConfiguration"]))
    rules = s3.get_bucket_lifecycle_configuration(Bucket=lake_bucket)["Rules"]
    noncurrent = [r for r in rules if r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 1
                  and r["Filter"].get("Prefix", "") == ""]
    checks.check(len(noncurrent) == 1, "[api] lake lifecycle expires noncurrent versions (keys/ included) after 1 day",
                 str(rules))
    s3.put_bucket_ownership_controls(Bucket=lake_bucket, OwnershipControls=lake["OwnershipControls"])
    policy = props("LakeBucketPolicy")
    s3.put_bucket_policy(Bucket=policy["Bucket"], Policy=json.dumps(policy["PolicyDocument"]))
    stored = statements_of(s3.get_bucket_policy(Bucket=lake_bucket)["Policy"])
    tls = [s for s in stored if s["Effect"] == "Deny"
           and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)]
    checks.check(len(tls) == 1 and set(as_list(tls[0]["Resource"])) == {f"arn:aws:s3:::{lake_bucket}",
                                                                        f"arn:aws:s3:::{lake_bucket}/*"},
                 "[api] lake bucket policy denies requests without TLS", str(stored))
    allowed = [s for s in stored if s["Effect"] == "Allow"]
    checks.check(all(s["Principal"] == {"AWS": analyst_arn} for s in allowed) and len(allowed) == 2,
                 "[api] lake bucket policy allows only the analyst role (read)", str(allowed))

    logs_bucket = props("SessionLogBucket")
    checks.check(logs_bucket["BucketName"] == session_bucket, "[api] session-log bucket name resolves")
    s3.put_public_access_block(Bucket=session_bucket, PublicAccessBlockConfiguration=logs_bucket["PublicAccessBlockConfiguration"])
    s3.put_bucket_notification_configuration(
        Bucket=session_bucket, NotificationConfiguration=notification_to_api(logs_bucket["NotificationConfiguration"]))
    notification = s3.get_bucket_notification_configuration(Bucket=session_bucket)
    lambda_configs = notification.get("LambdaFunctionConfigurations", [])
    rules = {r["Name"].lower(): r["Value"] for r in lambda_configs[0]["Filter"]["Key"]["FilterRules"]} if lambda_configs else {}
    checks.check(len(lambda_configs) == 1 and lambda_configs[0]["LambdaFunctionArn"] == config["FunctionArn"]
                 and lambda_configs[0]["Events"] == ["s3:ObjectCreated:*"] and rules == {"prefix": "ssm/", "suffix": ".log"},
                 "[api] session-log bucket sends ObjectCreated of ssm/*.log to the function", json.dumps(notification, default=str))
    logs_policy = props("SessionLogBucketPolicy")
    s3.put_bucket_policy(Bucket=logs_policy["Bucket"], Policy=json.dumps(logs_policy["PolicyDocument"]))
    checks.check(any(s["Effect"] == "Deny" for s in statements_of(s3.get_bucket_policy(Bucket=session_bucket)["Policy"])),
                 "[api] session-log bucket policy denies requests without TLS")

    for logical in ("SessionLogSubscription", "TrailLogSubscription"):
        spec = props(logical)
        logs.put_subscription_filter(logGroupName=spec["LogGroupName"], filterName=logical,
                                     filterPattern=spec["FilterPattern"], destinationArn=spec["DestinationArn"])
        found = logs.describe_subscription_filters(logGroupName=spec["LogGroupName"])["subscriptionFilters"]
        checks.check(len(found) == 1 and found[0]["destinationArn"] == config["FunctionArn"],
                     f"[api] {logical}: {spec['LogGroupName']} subscribed to the function", str(found))
    # moto's Lambda has no dead-letter queue at all (neither CloudFormation nor the API keep
    # DeadLetterConfig): only the template's resolved value can be checked.
    dead_letter = props("IngestFunction")["DeadLetterConfig"]
    checks.check(dead_letter == {"TargetArn": queue_arn},
                 "[template] function dead-letter queue is the stack's queue (moto's Lambda keeps none)",
                 str(dead_letter))

    # KMS_DESCRIBE_GAP: a key moto's CloudFormation created answers DescribeKey with a 500 (moto
    # keeps the KeyPolicy as an object and its DescribeKey policy check parses it as JSON text),
    # and is always SYMMETRIC_DEFAULT. So each key's KeySpec, KeyUsage and policy are applied
    # through CreateKey and the key is used as the function uses it.
    for logical, spec_usage, use in (
        ("DataKey", ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
         lambda key_id: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256",
                                              EncryptionContext={"sessionlake:role": "raw"})["CiphertextBlob"]),
        ("SigningKey", ("ECC_NIST_P256", "SIGN_VERIFY"),
         lambda key_id: kms.sign(KeyId=key_id, Message=b"\x00" * 32, MessageType="DIGEST",
                                 SigningAlgorithm="ECDSA_SHA_256")["Signature"]),
    ):
        key = props(logical)
        api_key = kms.create_key(KeySpec=key["KeySpec"], KeyUsage=key["KeyUsage"],
                                 Policy=json.dumps(key["KeyPolicy"]), Description=key["Description"])["KeyMetadata"]
        checks.check((api_key["KeySpec"], api_key["KeyUsage"]) == spec_usage and bool(use(api_key["KeyId"])),
                     f"[api] {logical} is {spec_usage[0]} {spec_usage[1]} and works as the function uses it",
                     str(api_key))

    alarm_names = [n for n, t in wanted.items() if t == "AWS::CloudWatch::Alarm"]
    for logical in alarm_names:
        alarm = props(logical)
        alarm["AlarmName"] = f"{stack}-{logical}"
        for number in ("Period", "EvaluationPeriods"):
            alarm[number] = int(alarm[number])
        alarm["Threshold"] = float(alarm["Threshold"])
        cloudwatch.put_metric_alarm(**alarm)
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack}-")["MetricAlarms"]}
    expected_metrics = {
        "ErrorsAlarm": ("AWS/Lambda", "Errors", {"FunctionName": function_name}),
        "EventsDroppedAlarm": ("AWS/Lambda", "AsyncEventsDropped", {"FunctionName": function_name}),
        "IngestLagAlarm": ("AWS/Lambda", "AsyncEventAge", {"FunctionName": function_name}),
        "DeadLetterAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue_arn.rsplit(":", 1)[1]}),
        "QuarantinedAlarm": ("sessionlake", "QuarantinedInputs", {"FunctionName": function_name}),
        "MaintenanceFailedAlarm": ("AWS/Events", "FailedInvocations", {"RuleName": rule_name}),
    }
    for logical, (namespace, metric, dimensions) in expected_metrics.items():
        alarm = alarms.get(f"{stack}-{logical}", {})
        got = (alarm.get("Namespace"), alarm.get("MetricName"),
               {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])})
        checks.check(got == (namespace, metric, dimensions), f"[api] alarm {logical} on {namespace} {metric}", str(got))
    checks.check(sorted(alarm_names) == sorted(expected_metrics), "no other alarm", str(alarm_names))

    database = props("GlueDatabase")
    glue.create_database(**database)
    # Ref of a Glue database is its name; moto's stack has no such resource to ask.
    physical["GlueDatabase"] = database["DatabaseInput"]["Name"]
    for logical, table in (("CommandsTable", "sessionlake_commands"), ("SessionsTable", "sessionlake_sessions"),
                           ("AccessTable", "sessionlake_access")):
        spec = props(logical)
        glue.create_table(DatabaseName=spec["DatabaseName"], TableInput=spec["TableInput"])
        stored = glue.get_table(DatabaseName=spec["DatabaseName"], Name=table)["Table"]
        columns = {c["Name"]: c["Type"] for c in stored["StorageDescriptor"]["Columns"]}
        partitions = {c["Name"]: c["Type"] for c in stored.get("PartitionKeys", [])}
        want_columns, want_partitions = ddl_columns(table)
        checks.check(list(columns) == list(want_columns) and columns == want_columns and partitions == want_partitions,
                     f"[api] Glue table {table}: columns and types of schemas/ddl/athena.sql",
                     f"template {columns} {partitions} vs DDL {want_columns} {want_partitions}")
        location = stored["StorageDescriptor"]["Location"]
        template_location = stored["Parameters"].get("storage.location.template")
        folder = table.removeprefix("sessionlake_")
        checks.check(location == f"s3://{lake_bucket}/lake/{folder}/"
                     and template_location == f"s3://{lake_bucket}/lake/{folder}/dt=${{dt}}/",
                     f"[api] Glue table {table} reads s3://LAKE/lake/{folder}/ with dt projection",
                     f"{location} {template_location}")

    analyst_policy = props("AnalystRole")["Policies"][0]["PolicyDocument"]["Statement"]
    glue_resources = [r for st in analyst_policy for r in as_list(st["Resource"]) if ":glue:" in r]
    checks.check(glue_resources and all(r.endswith((":catalog", f":database/sessionlake_{suffix}", f":table/sessionlake_{suffix}/*"))
                                        for r in glue_resources),
                 "[template] analyst reads the Glue catalog, the stack's database and its tables only",
                 str(glue_resources))

    print("outputs:")
    checks.check(outputs.get("LakeUrl") == f"s3://{lake_bucket}/lake", "output LakeUrl", outputs.get("LakeUrl"))
    command = outputs.get("CloudTrailBucketNotificationCommand", "")
    checks.check(trail_bucket in command and config["FunctionArn"] in command,
                 "output CloudTrailBucketNotificationCommand names the bucket and function", command)

    cfn.delete_stack(StackName=stack)

    print("a second stack: an existing session-log bucket only, Object Lock off, an analyst role given:")
    check_minimal_stack(checks, session, endpoint, code_bucket, suffix, account)

    elapsed = time.monotonic() - started
    if checks.failed:
        print(f"deploy test: FAIL ({checks.failed} failed, {elapsed:.1f} s)")
        return 1
    print(f"deploy test: PASS ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
