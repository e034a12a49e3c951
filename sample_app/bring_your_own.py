"""A platform team's app: batchwright on the team's own network, bucket and role, and a
second stack whose Lambda function may submit flows to one queue.

- ``PlatformBase``: what the team already has: a VPC with private subnets behind NAT, a
  KMS-encrypted bucket, the role step code runs with.
- ``PlatformBatch``: a :class:`~batchwright_cdk.BatchEnvironment` that creates only the
  Batch parts and brings everything else; jobs read a database password from Secrets
  Manager (``@batch(secrets=...)``).
- ``PlatformTriggers``: a Lambda function granted submission to the ``gpu`` queue only,
  through cross-stack references.

Synthesize it with ``cdk synth --app "python sample_app/bring_your_own.py"`` (no AWS
account needed; the stacks are account-agnostic).
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager

from batchwright_cdk import BatchChecks, BatchEnvironment, QueueSpec

#: The database password jobs may read (an existing secret, by name).
DB_PASSWORD_SECRET = "platform/db-password"

#: The triggering function's code; what it submits is up to the team (it is given the
#: queue's ARN and may submit to that queue only).
TRIGGER_CODE = """
import os

def handler(event, context):
    return {"queue": os.environ["BATCHWRIGHT_QUEUE_ARN"]}
"""


class PlatformBase(cdk.Stack):
    """What the platform team already has."""

    def __init__(self, scope: cdk.App, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.vpc = ec2.Vpc(
            self,
            "Network",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Ingress", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="Workloads", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
            ],
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.KMS,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        )
        self.job_role = iam.Role(
            self,
            "StepCode",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="What the platform's step code may do",
        )


def build_app(app: cdk.App | None = None) -> cdk.App:
    """The three stacks (tests synthesize them through this function)."""
    app = app or cdk.App()
    env = cdk.Environment(region=os.environ.get("CDK_DEFAULT_REGION") or "eu-west-1")
    base = PlatformBase(app, "PlatformBase", env=env)

    batch_stack = cdk.Stack(app, "PlatformBatch", env=env)
    database = secretsmanager.Secret.from_secret_name_v2(
        batch_stack, "DbPassword", DB_PASSWORD_SECRET
    )
    environment = BatchEnvironment(
        batch_stack,
        "Batch",
        vpc=base.vpc,
        subnets=ec2.SubnetSelection(subnet_group_name="Workloads"),
        bucket=base.bucket,
        job_role=base.job_role,
        datastore_prefix="flows",
        secrets=[database],
        default_image="public.ecr.aws/docker/library/python:3.11-slim",
        queues=[
            QueueSpec.on_demand("cpu", instance_types=["c6i", "m6i"], max_vcpus=256),
            QueueSpec.gpu("gpu", instance_types=["g5.xlarge", "g5.2xlarge"], max_vcpus=64),
        ],
    )
    cdk.Aspects.of(batch_stack).add(BatchChecks())

    triggers = cdk.Stack(app, "PlatformTriggers", env=env)
    function = lambda_.Function(
        triggers,
        "NightlyTraining",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline(TRIGGER_CODE),
        environment={"BATCHWRIGHT_QUEUE_ARN": environment.job_queues["gpu"].job_queue_arn},
    )
    environment.grant_submit_job(function, "gpu")
    return app


if __name__ == "__main__":
    build_app().synth()
