"""Deploy the packaged template into moto, offline: what CI can check of `make deploy`.

The SAM template (infra.template) is translated to plain CloudFormation by aws-sam-translator, as
CloudFormation's own transform would, and the stack is created in moto's CloudFormation. moto
cannot create every resource type chute uses (`BRIDGED`); those are taken out of the stack and
created with the service APIs moto does implement, from the same properties, resolved the way
CloudFormation resolves them:

- before the stack, what the stack refers to: the Cognito user pool, its client and the admin
  group, the model key's secret; the stack's Refs and GetAtts to them become their values;
- after the stack, what refers to the stack: the uploads queue's policy, the email
  subscriptions, the CloudWatch alarms;
- moto's RestApi takes a Name and ignores the Swagger body (its importer reads OpenAPI 3 only):
  the authorizer, resources, methods and integrations are made from the body after the stack,
  then the deployment and the stage (moto will not deploy an API without methods);
- moto's Bucket applies only the encryption: CORS, lifecycle, the public access block and the
  notification are put on it after the stack; moto's Table takes neither the TTL nor point-in-time
  recovery: both are turned on after the stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

Template = dict[str, Any]

ACCOUNT = "123456789012"  # moto's default account
# Made before the stack: the stack refers to them.
BEFORE = (
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolGroup",
    "AWS::SecretsManager::Secret",
)
# Made after the stack: they refer to it.
AFTER = (
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Stage",
)
BRIDGED = BEFORE + AFTER
_SUB_NAME = re.compile(r"\$\{([^}!][^}]*)\}")


def translate(sam: Template, session: boto3.Session, code_uri: str) -> Template:
    """SAM → CloudFormation, with every function's code at code_uri (s3://bucket/key), as
    `aws cloudformation package` leaves it."""
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
    from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

    template = deepcopy(sam)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    translated: Template = Translator(None, Parser(), boto_session=session).translate(
        template, parameter_values={}, get_managed_policy_map=dict
    )
    return translated


@dataclass
class Resolver:
    """CloudFormation's intrinsic functions over known values."""

    parameters: dict[str, Any]
    conditions: Mapping[str, Any]
    refs: dict[str, Any] = field(default_factory=dict)
    known_attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    attributes: Callable[[str, str], Any] | None = None

    def condition(self, name: str) -> bool:
        return bool(self(self.conditions[name]))

    def ref(self, name: str) -> Any:
        return self.parameters[name] if name in self.parameters else self.refs[name]

    def get_att(self, name: str, attribute: str) -> Any:
        if (name, attribute) in self.known_attributes:
            return self.known_attributes[(name, attribute)]
        if self.attributes is None:
            raise KeyError(f"{name}.{attribute}")
        return self.attributes(name, attribute)

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return _SUB_NAME.sub(value, text)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, {k: self(v) for k, v in variables.items()})
            if key == "Fn::If":
                return self(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self(arg[1]))
            if key == "Fn::Split":
                return str(self(arg[1])).split(arg[0])
            if key == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if key == "Fn::Equals":
                return self(arg[0]) == self(arg[1])
            if key == "Fn::Not":
                return not self(arg[0])
            if key == "Condition":
                return self.condition(arg)
        return {k: v for k, v in ((k, self(v)) for k, v in value.items()) if v is not _NO_VALUE}


_NO_VALUE = object()


def _substitute(value: Any, resolver: Resolver, bridged: set[str]) -> Any:
    """Refs and GetAtts to bridged resources replaced by their values (Subs rewritten)."""
    if isinstance(value, list):
        return [_substitute(v, resolver, bridged) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in bridged:
            return resolver.ref(arg)
        if key == "Fn::GetAtt" and arg[0] in bridged:
            return resolver.get_att(arg[0], arg[1])
    return {k: _substitute(v, resolver, bridged) for k, v in value.items()}


@dataclass
class Deployed:
    stack_name: str
    outputs: dict[str, str]
    physical: dict[str, str]  # logical id → physical id, bridged resources included
    bridged: dict[str, str]  # logical id → resource type, of those made outside the stack


def deploy(
    template: Template,
    session: boto3.Session,
    stack_name: str,
    parameters: Mapping[str, str],
    *,
    deployment_zip: Path,
    artifacts_bucket: str = "chute-artifacts",
) -> Deployed:
    """Create the packaged SAM template's stack in moto (mock_aws active, or session pointed at
    a moto server); its outputs and physical ids."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=artifacts_bucket)
    s3.upload_file(str(deployment_zip), artifacts_bucket, "deployment.zip")
    cfn = translate(template, session, f"s3://{artifacts_bucket}/deployment.zip")

    region = session.region_name or "us-east-1"
    values: dict[str, Any] = {
        name: spec.get("Default", "") for name, spec in cfn.get("Parameters", {}).items()
    }
    values.update(parameters)
    values.update(
        {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    resolver = Resolver({k: str(v) for k, v in values.items()}, cfn.get("Conditions", {}))
    resources = cfn["Resources"]
    bridged = {k: r["Type"] for k, r in resources.items() if r["Type"] in BRIDGED}
    made = {
        k: r
        for k, r in resources.items()
        if "Condition" not in r or resolver.condition(r["Condition"])
    }
    for kind in BEFORE:
        for logical, resource in made.items():
            if resource["Type"] == kind:
                _make_before(session, kind, logical, resolver(resource["Properties"]), resolver)

    stack = deepcopy(cfn)
    for resource in resources.values():
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            # moto's RestApi wants a Name and ignores the Body (its importer reads OpenAPI 3
            # only, chalice writes Swagger 2.0); the authorizer is made from the Body below.
            resource["Properties"]["Name"] = f"{stack_name}-api"
    stack["Resources"] = {
        logical: _substitute(_without_depends(resource, set(bridged)), resolver, set(bridged))
        for logical, resource in resources.items()
        if logical not in bridged
    }
    stack["Outputs"] = {
        name: _substitute(output, resolver, set(bridged)) for name, output in cfn["Outputs"].items()
    }
    client = session.client("cloudformation")
    client.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(stack),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = client.describe_stacks(StackName=stack_name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name}: {described['StackStatus']}")
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in client.describe_stack_resources(StackName=stack_name)["StackResources"]
    }
    resolver.refs.update(physical)
    resolver.attributes = _attributes(session, resources, physical)
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::S3::Bucket":
            _configure_bucket(session, physical[logical], resolver(resource["Properties"]))
        if resource["Type"] == "AWS::DynamoDB::Table":
            _configure_table(session, physical[logical], resolver(resource["Properties"]))
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            _make_routes(session, physical[logical], resolver(resource["Properties"]["Body"]))
    for kind in AFTER:
        for logical, resource in made.items():
            if resource["Type"] == kind:
                resolver.refs[logical] = _make_after(
                    session, resource["Type"], resolver(resource["Properties"])
                )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    refs = {k: str(v) for k, v in resolver.refs.items()}
    return Deployed(stack_name, outputs, {**refs, **physical}, bridged)


def _without_depends(resource: Template, bridged: set[str]) -> Template:
    depends = resource.get("DependsOn")
    if depends is None:
        return resource
    kept = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in bridged]
    out = {k: v for k, v in resource.items() if k != "DependsOn"}
    if kept:
        out["DependsOn"] = kept
    return out


def _make_before(
    session: boto3.Session, kind: str, logical: str, props: Template, resolver: Resolver
) -> None:
    refs = resolver.refs
    if kind == "AWS::Cognito::UserPool":
        idp = session.client("cognito-idp")
        pool = idp.create_user_pool(PoolName=props.pop("UserPoolName", logical), **props)
        refs[logical] = pool["UserPool"]["Id"]
        resolver.known_attributes[(logical, "Arn")] = pool["UserPool"]["Arn"]
    elif kind == "AWS::Cognito::UserPoolClient":
        idp = session.client("cognito-idp")
        client = idp.create_user_pool_client(ClientName=logical, **props)
        refs[logical] = client["UserPoolClient"]["ClientId"]
    elif kind == "AWS::Cognito::UserPoolGroup":
        session.client("cognito-idp").create_group(**props)
        refs[logical] = props["GroupName"]
    else:  # AWS::SecretsManager::Secret
        secret = session.client("secretsmanager").create_secret(Name=logical, **props)
        refs[logical] = secret["ARN"]


def _make_after(session: boto3.Session, kind: str, props: Template) -> str:
    if kind == "AWS::SQS::QueuePolicy":
        sqs = session.client("sqs")
        for url in props["Queues"]:
            sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
        return str(props["Queues"][0])
    if kind == "AWS::SNS::Subscription":
        attributes = {}
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
        answer = session.client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        return str(answer["SubscriptionArn"])
    if kind == "AWS::CloudWatch::Alarm":
        name = f"chute-{props['Namespace'].split('/')[1]}-{props['MetricName']}-" + "-".join(
            str(d["Value"]).rsplit(":", 1)[-1] for d in props["Dimensions"]
        )
        # Parameters arrive as strings; the API wants the threshold a number.
        props["Threshold"] = float(props["Threshold"])
        session.client("cloudwatch").put_metric_alarm(AlarmName=name, **props)
        return name
    if kind == "AWS::ApiGateway::Deployment":
        deployment = session.client("apigateway").create_deployment(
            restApiId=props["RestApiId"], description=props.get("Description", "")
        )
        return str(deployment["id"])
    # AWS::ApiGateway::Stage
    session.client("apigateway").create_stage(
        restApiId=props["RestApiId"],
        stageName=props["StageName"],
        deploymentId=props["DeploymentId"],
    )
    return str(props["StageName"])


def _configure_bucket(session: boto3.Session, bucket: str, props: Template) -> None:
    """What moto's CloudFormation leaves out of a bucket, put with the S3 API."""
    # Any: the rules are built from the template's JSON, not from the stubs' TypedDicts.
    s3: Any = session.client("s3")
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "CorsConfiguration" in props:
        rules = [
            {
                "AllowedMethods": r["AllowedMethods"],
                "AllowedOrigins": r["AllowedOrigins"],
                "AllowedHeaders": r.get("AllowedHeaders", []),
                "ExposeHeaders": r.get("ExposedHeaders", []),
                "MaxAgeSeconds": r.get("MaxAge", 0),
            }
            for r in props["CorsConfiguration"]["CorsRules"]
        ]
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    if "LifecycleConfiguration" in props:
        lifecycle = [
            {
                "ID": r["Id"],
                "Status": r["Status"],
                "Filter": {"Prefix": r["Prefix"]},
                "Expiration": {"Days": r["ExpirationInDays"]},
                "AbortIncompleteMultipartUpload": r["AbortIncompleteMultipartUpload"],
            }
            for r in props["LifecycleConfiguration"]["Rules"]
        ]
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": lifecycle}
        )
    if "NotificationConfiguration" in props:
        queues = [
            {
                "QueueArn": q["Queue"],
                "Events": [q["Event"]],
                "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
            }
            for q in props["NotificationConfiguration"].get("QueueConfigurations", [])
        ]
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues}
        )


def _configure_table(session: boto3.Session, table: str, props: Template) -> None:
    """What moto's CloudFormation leaves out of a table, set with the DynamoDB API."""
    ddb = session.client("dynamodb")
    if "TimeToLiveSpecification" in props:
        ttl = props["TimeToLiveSpecification"]
        ddb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={
                "Enabled": ttl["Enabled"],
                "AttributeName": ttl["AttributeName"],
            },
        )
    if "PointInTimeRecoverySpecification" in props:
        enabled = props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
        ddb.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled},
        )


def _make_routes(session: boto3.Session, api_id: str, body: Template) -> None:
    """The Swagger body's authorizers, resources, methods and Lambda integrations, made one API
    call at a time (what API Gateway's import does)."""
    apigateway = session.client("apigateway")
    authorizers = {
        name: apigateway.create_authorizer(
            restApiId=api_id,
            name=name,
            type="COGNITO_USER_POOLS",
            providerARNs=scheme["x-amazon-apigateway-authorizer"]["providerARNs"],
            identitySource=f"method.request.header.{scheme['name']}",
        )["id"]
        for name, scheme in body.get("securityDefinitions", {}).items()
    }
    ids = {r["path"]: r["id"] for r in apigateway.get_resources(restApiId=api_id)["items"]}
    for path in sorted(body["paths"]):
        parent = "/"
        for part in path.strip("/").split("/") if path != "/" else []:
            here = f"{parent.rstrip('/')}/{part}"
            if here not in ids:
                made = apigateway.create_resource(
                    restApiId=api_id, parentId=ids[parent], pathPart=part
                )
                ids[here] = made["id"]
            parent = here
        for method, operation in body["paths"][path].items():
            security = [name for s in operation.get("security", []) for name in s]
            extra: dict[str, str] = {"authorizationType": "NONE"}
            if security:
                extra = {"authorizationType": "COGNITO_USER_POOLS",
                         "authorizerId": authorizers[security[0]]}  # fmt: skip
            apigateway.put_method(
                restApiId=api_id, resourceId=ids[path], httpMethod=method.upper(), **extra
            )
            integration = operation["x-amazon-apigateway-integration"]
            apigateway.put_integration(
                restApiId=api_id,
                resourceId=ids[path],
                httpMethod=method.upper(),
                type=integration["type"].upper(),
                integrationHttpMethod=integration.get("httpMethod", "POST"),
                uri=integration.get("uri", ""),
            )


def _attributes(
    session: boto3.Session, resources: Template, physical: Mapping[str, str]
) -> Callable[[str, str], Any]:
    """GetAtt of the stack's resources that bridged resources name: queues' Arn and QueueName,
    functions' Arn."""
    sqs = session.client("sqs")

    def attribute(logical: str, name: str) -> Any:
        kind = resources[logical]["Type"]
        if kind == "AWS::Lambda::Function" and name == "Arn":
            function = session.client("lambda").get_function(FunctionName=physical[logical])
            return function["Configuration"]["FunctionArn"]
        if kind != "AWS::SQS::Queue":
            raise KeyError(f"{logical}.{name}")
        url = physical[logical]
        if name == "QueueName":
            return url.rsplit("/", 1)[-1]
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    return attribute
