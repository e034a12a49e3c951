"""The datastore bucket and the job log group, created only when the user brings none."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from batchwright_cdk.validation import check_count, fail

#: Days after which S3 aborts an incomplete multipart upload (and stops charging for it).
ABORT_INCOMPLETE_UPLOADS_AFTER = cdk.Duration.days(7)
#: Retention of job logs when none is given.
DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def normalize_prefix(prefix: str) -> str:
    """The datastore prefix without leading/trailing slashes ("" means the whole bucket)."""
    return prefix.strip("/")


@dataclass(frozen=True, kw_only=True)
class DatastoreLifecycle:
    """What happens to run artifacts (everything under the datastore prefix) as they age.
    Off unless given; each part is optional.

    Args:
        expire_after_days: Delete objects this many days after they were last written, 14
            or more. The runtime renews a content-addressed object (artifact, code package)
            older than 7 days when a new run reuses it, so expiry counts from its last use;
            a run whose objects expired can no longer be resumed or read.
        intelligent_tiering_after_days: Move objects to S3 Intelligent-Tiering after this
            many days (0: at once); S3 then moves rarely read artifacts to cheaper tiers.

    Raises:
        EnvironmentConfigError: a negative or zero count, or tiering at or after expiry.
    """

    expire_after_days: int | None = None
    intelligent_tiering_after_days: int | None = None

    def __post_init__(self) -> None:
        where = "DatastoreLifecycle"
        # Twice the runtime's renewal age (batchwright.datastore.s3.RENEW_AFTER).
        check_count(where, "expire_after_days", self.expire_after_days, minimum=14)
        check_count(
            where, "intelligent_tiering_after_days", self.intelligent_tiering_after_days, minimum=0
        )
        expire, tier = self.expire_after_days, self.intelligent_tiering_after_days
        if (
            expire is not None
            and tier is not None
            and not cdk.Token.is_unresolved(expire)
            and not cdk.Token.is_unresolved(tier)
            and tier >= expire
        ):
            raise fail(
                where,
                "intelligent_tiering_after_days",
                tier,
                f"is not before expire_after_days={expire}",
                "Tier objects before they expire, or drop one of the two",
            )

    def rule(self, prefix: str) -> s3.LifecycleRule | None:
        """The bucket's lifecycle rule for objects under ``prefix`` (None: nothing to do)."""
        if self.expire_after_days is None and self.intelligent_tiering_after_days is None:
            return None
        transitions = (
            [
                s3.Transition(
                    storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                    transition_after=cdk.Duration.days(self.intelligent_tiering_after_days),
                )
            ]
            if self.intelligent_tiering_after_days is not None
            else None
        )
        return s3.LifecycleRule(
            id="BatchwrightArtifacts",
            prefix=f"{prefix}/" if prefix else None,
            expiration=(
                cdk.Duration.days(self.expire_after_days)
                if self.expire_after_days is not None
                else None
            ),
            transitions=transitions,
        )


class Datastore(Construct):
    """A private, TLS-only, encrypted S3 bucket for run artifacts.

    Public access is blocked, ownership is bucket-owner-enforced (no ACLs), incomplete
    multipart uploads are aborted after :data:`ABORT_INCOMPLETE_UPLOADS_AFTER`. The bucket
    is retained when the stack is deleted unless ``auto_delete`` is set (sandboxes only:
    it adds a custom resource that empties the bucket on deletion).

    ``lifecycle`` adds expiry and tiering of the objects under ``prefix``.

    Attributes:
        bucket: The created bucket (the primary resource, construct id ``Bucket``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        auto_delete: bool = False,
        lifecycle: DatastoreLifecycle | None = None,
        prefix: str = "",
    ):
        super().__init__(scope, construct_id)
        rules = [
            s3.LifecycleRule(
                id="AbortIncompleteMultipartUploads",
                abort_incomplete_multipart_upload_after=ABORT_INCOMPLETE_UPLOADS_AFTER,
            )
        ]
        artifacts = lifecycle.rule(prefix) if lifecycle is not None else None
        if artifacts is not None:
            rules.append(artifacts)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=rules,
            removal_policy=cdk.RemovalPolicy.DESTROY if auto_delete else cdk.RemovalPolicy.RETAIN,
            auto_delete_objects=auto_delete,
        )
        no_access_logs = (
            "The datastore holds run artifacts written only by the job role; server access "
            "logs would double the request cost. CloudTrail data events can be enabled "
            "account-wide where an audit trail is required."
        )
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-S1", reason=no_access_logs)
        )
        skip_checkov(self.bucket, "CKV_AWS_18", no_access_logs)
        skip_checkov(
            self.bucket,
            "CKV_AWS_21",
            "Artifacts are written once under content-addressed keys and never overwritten; "
            "versioning would only keep deleted runs (and their cost) after expiry.",
        )


def create_log_group(
    scope: Construct, construct_id: str, *, retention: logs.RetentionDays
) -> logs.LogGroup:
    """The job log group: no fixed name, retained with the stack's data."""
    group = logs.LogGroup(
        scope,
        construct_id,
        retention=retention,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    skip_checkov(
        group,
        "CKV_AWS_158",
        "CloudWatch Logs encrypts log data at rest with service-managed keys; a customer "
        "managed key adds a key policy and cost. Bring a KMS-encrypted group (log_group=) "
        "where policy asks for one.",
    )
    return group


def skip_checkov(construct: Construct, check: str, reason: str) -> None:
    """Records in the template (``Metadata.checkov.skip``) why ``construct``'s resource
    does not follow checkov's ``check``, as cdk-nag acknowledgments do for cdk-nag."""
    resource = construct.node.default_child
    assert isinstance(resource, cdk.CfnResource)
    skips = list((resource.get_metadata("checkov") or {}).get("skip", []))
    skips.append({"id": check, "comment": reason})
    resource.add_metadata("checkov", {"skip": skips})
