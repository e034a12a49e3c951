"""The datastore bucket and the job log group, created only when the user brings none."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

#: Days after which S3 aborts an incomplete multipart upload (and stops charging for it).
ABORT_INCOMPLETE_UPLOADS_AFTER = cdk.Duration.days(7)
#: Retention of job logs when none is given.
DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def normalize_prefix(prefix: str) -> str:
    """The datastore prefix without leading/trailing slashes ("" means the whole bucket)."""
    return prefix.strip("/")


class Datastore(Construct):
    """A private, TLS-only, encrypted S3 bucket for run artifacts.

    Public access is blocked, ownership is bucket-owner-enforced (no ACLs), incomplete
    multipart uploads are aborted after :data:`ABORT_INCOMPLETE_UPLOADS_AFTER`. The bucket
    is retained when the stack is deleted unless ``auto_delete`` is set (sandboxes only:
    it adds a custom resource that empties the bucket on deletion).

    Attributes:
        bucket: The created bucket (the primary resource, construct id ``Bucket``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, auto_delete: bool = False):
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="AbortIncompleteMultipartUploads",
                    abort_incomplete_multipart_upload_after=ABORT_INCOMPLETE_UPLOADS_AFTER,
                )
            ],
            removal_policy=cdk.RemovalPolicy.DESTROY if auto_delete else cdk.RemovalPolicy.RETAIN,
            auto_delete_objects=auto_delete,
        )
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="The datastore holds run artifacts written only by the job role; "
                "server access logs would double the request cost. CloudTrail data events "
                "can be enabled account-wide where an audit trail is required.",
            )
        )


def create_log_group(
    scope: Construct, construct_id: str, *, retention: logs.RetentionDays
) -> logs.LogGroup:
    """The job log group: no fixed name, retained with the stack's data."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=retention,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
