"""The AWS side of a deployed flow: one function per action of ``step-functions``.

* :func:`upload_code_package` puts the flow's code package in the datastore;
* :func:`deploy` registers the job definitions the states name, creates or updates the
  state machine's IAM role (least privilege), the state machine and, for a flow with
  ``@schedule``, an EventBridge Scheduler schedule (and the role it starts executions
  with);
* :func:`trigger` starts an execution, whose name is the run id;
* :func:`list_runs` lists the executions;
* :func:`delete` removes the state machine, its schedule and the roles :func:`deploy`
  made.

Every AWS error reaches the caller as a :class:`DeployError` naming the call, the
resource and the fix. Nothing here prints: the CLI shows the typed results.

The roles are named after the state machine and the region (IAM is global, a state
machine is not), live under the path ``/batchwright/`` and carry the tag
:data:`STATE_MACHINE_TAG`; :func:`delete` removes a role only when that tag names its
state machine, so a role someone else made with the same name is never touched.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from batchwright import aws
from batchwright.batch.definition import DEFINITION_NAME_PREFIX, LAST_USED_TAG
from batchwright.batch.options import TAG_PREFIX
from batchwright.errors import BatchwrightError

if TYPE_CHECKING:
    from batchwright.codepackage import CodePackage
    from batchwright.stepfunctions.compiler import CompiledFlow

#: Tag on the state machine: the flow it runs.
FLOW_TAG = TAG_PREFIX + "flow"
#: Tag on the state machine and the roles: who deployed them.
DEPLOYED_BY_TAG = TAG_PREFIX + "deployed-by"
#: Tag on the state machine: the datastore root its runs use (what ``logs`` and the
#: client read them from).
DATASTORE_TAG = TAG_PREFIX + "datastore-root"
#: Tag on the roles :func:`deploy` made: the state machine they serve.
STATE_MACHINE_TAG = TAG_PREFIX + "state-machine"
#: Where the roles live in IAM.
ROLE_PATH = "/batchwright/"
#: The inline policy of each role.
POLICY_NAME = "batchwright-step-functions"
#: The rule Step Functions manages for ``batch:submitJob.sync`` (what ``.sync`` needs).
SYNC_RULE = "StepFunctionsGetEventsForBatchJobsRule"
#: The input of a scheduled execution: every parameter at its default.
SCHEDULED_INPUT = json.dumps({"Parameters": {}})
#: The longest IAM role name.
MAX_ROLE_NAME = 64
#: How long a newly created or changed role may take to be assumable (IAM is eventually
#: consistent), and the pause between tries.
ROLE_PROPAGATION_SECONDS = 90.0
ROLE_PROPAGATION_PAUSE_SECONDS = 5.0
#: Execution statuses ``list_runs`` filters on (ListExecutions' statusFilter).
EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

Change = Literal["created", "updated", "unchanged", "given", "deleted", "absent"]


class Schedule(Protocol):
    """When the deployed flow runs by itself: what :func:`deploy` reads of
    :class:`batchwright.schedule.Schedule` (``@schedule``)."""

    @property
    def expression(self) -> str:
        """The EventBridge Scheduler ``ScheduleExpression``."""

    @property
    def timezone(self) -> str | None:
        """The ``ScheduleExpressionTimezone``; None means UTC."""


class DeployError(BatchwrightError):
    """An AWS call of a deployment failed; the message names the call, the resource and
    the fix. ``code`` is AWS's error code ("" when AWS did not answer)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class StateMachineNotFound(BatchwrightError):
    """No state machine of that name in the region."""


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """What :func:`deploy` did."""

    name: str
    region: str
    state_machine_arn: str
    #: ``created`` or ``updated``.
    state_machine: Change
    role_arn: str
    #: ``created``, ``updated`` or ``given`` (``role_arn`` was passed).
    role: Change
    #: Job definitions registered now, and those already ACTIVE (names).
    registered_definitions: tuple[str, ...] = ()
    reused_definitions: tuple[str, ...] = ()
    #: The schedule's ARN, None without one.
    schedule_arn: str | None = None
    #: ``created``, ``updated``, ``deleted`` (left from an earlier deploy) or ``absent``.
    schedule: Change = "absent"
    scheduler_role_arn: str | None = None
    #: Things the user should know that did not stop the deployment.
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Triggered:
    """A run :func:`trigger` started."""

    run_id: str
    execution_arn: str
    #: The datastore root the run writes to (from the state machine's tag), if known.
    datastore_root: str | None = None


@dataclass(frozen=True)
class Execution:
    """One execution of a deployed flow: a run."""

    run_id: str
    status: str
    started_at: datetime | None
    stopped_at: datetime | None
    arn: str


@dataclass(frozen=True)
class Deletion:
    """What :func:`delete` removed (each ``deleted`` or ``absent``)."""

    name: str
    region: str
    state_machine: Change
    schedule: Change
    #: The names of the roles deleted.
    roles: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()

    @property
    def nothing(self) -> bool:
        """Whether there was nothing to delete."""
        return self.state_machine == "absent" and self.schedule == "absent" and not self.roles


# --- calls ----------------------------------------------------------------------------------

#: The fix for the AWS error codes a deployment meets most.
_FIXES = {
    "AccessDenied": "the AWS identity you deploy with lacks this permission; grant it",
    "AccessDeniedException": "the AWS identity you deploy with lacks this permission; grant it",
    "UnrecognizedClientException": "your AWS credentials are not valid; refresh them",
    "ExpiredToken": "your AWS credentials expired; refresh them",
    "ExpiredTokenException": "your AWS credentials expired; refresh them",
    "InvalidClientTokenId": "your AWS credentials are not valid; refresh them",
    "LimitExceeded": "an account quota is reached; delete what is unused or raise the quota",
    "StateMachineLimitExceeded": "the account's state machine quota is reached; delete "
    "unused state machines or raise the quota",
}


@dataclass
class _Calls:
    """The AWS calls of one action: every failure becomes a :class:`DeployError`."""

    region: str | None
    session: Any = None
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = aws.client(service, region=self.region, session=self.session)
        return self.clients[service]

    def __call__(
        self,
        service: str,
        operation: str,
        resource: str,
        fix: str,
        **kwargs: Any,
    ) -> Any:
        """``service.operation(**kwargs)``; a failure names ``resource`` and ``fix``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client(service), operation)(**kwargs)
        except ClientError as error:
            raise _failure(service, operation, resource, fix, error) from None
        except BotoCoreError as error:
            raise DeployError(
                f"{service} {operation} on {resource} failed: {error}. Check that AWS is "
                "reachable (network, endpoint, region) and try again."
            ) from None

    def pages(
        self, service: str, operation: str, key: str, resource: str, fix: str, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item under ``key`` of every page of a listing."""
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client(service).get_paginator(operation)
        try:
            for page in paginator.paginate(**kwargs):
                yield from page.get(key, [])
        except ClientError as error:
            raise _failure(service, operation, resource, fix, error) from None
        except BotoCoreError as error:
            raise DeployError(
                f"{service} {operation} on {resource} failed: {error}. Check that AWS is "
                "reachable (network, endpoint, region) and try again."
            ) from None


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _failure(
    service: str, operation: str, resource: str, fix: str, error: Exception
) -> DeployError:
    code = _code(error)
    fix = _FIXES.get(code, fix)
    return DeployError(
        f"{service} {operation} on {resource} failed ({aws.describe_error(error)}). "
        f"{fix[:1].upper()}{fix[1:]}.",
        code,
    )


def _is_missing(error: DeployError, *codes: str) -> bool:
    return error.code in codes


# --- names and ARNs -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    partition: str
    account: str
    region: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = self.region if region else ""
        owner = self.account if account else ""
        return f"arn:{self.partition}:{service}:{where}:{owner}:{resource}"


def _account(calls: _Calls) -> _Account:
    identity = calls("sts", "get_caller_identity", "your AWS identity", "configure AWS credentials")
    partition = str(identity["Arn"]).split(":")[1]
    region = calls.client("sts").meta.region_name
    return _Account(partition, str(identity["Account"]), str(region))


def role_name(state_machine: str, region: str, kind: Literal["states", "scheduler"]) -> str:
    """The IAM role :func:`deploy` makes for ``state_machine`` in ``region``: readable,
    within IAM's 64 characters (a long name is shortened and keeps a hash of itself)."""
    name = f"batchwright-{kind}-{region}-{state_machine}"
    if len(name) <= MAX_ROLE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_ROLE_NAME - 9]}-{digest}"


def _queue_arn(account: _Account, queue: str) -> str:
    return queue if queue.startswith("arn:") else account.arn("batch", f"job-queue/{queue}")


def _task_states(states: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every Task state of an ASL ``States``, in branches and iterators too."""
    for state in states.values():
        if not isinstance(state, Mapping):
            continue
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches") or []:
            yield from _task_states(branch.get("States", {}))
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), Mapping):
                yield from _task_states(state[key].get("States", {}))


def state_machine_policy(
    compiled: CompiledFlow, *, partition: str, account: str, region: str
) -> dict[str, Any]:
    """The policy of the state machine's role: submit to exactly the queues its states
    name, with batchwright's job definitions; follow its jobs and stop those carrying the
    run tag; keep the rule ``.sync`` needs; write the run's ``_deployment`` records
    (its Parameters, a step's failure) and read the array sizes of its runs.

    The definitions are every ``batchwright-*`` one, not only those of this deployment:
    an execution started before a redeploy keeps the definition it started with, whose
    states name the earlier job definitions, while the role's policy is replaced.
    """
    from batchwright.stepfunctions import compiler, layout

    where = _Account(partition, account, region)
    # Batch authorizes a definition named without a revision as job-definition/NAME, and
    # a revision as NAME:N: the wildcard covers both.
    definitions = [where.arn("batch", f"job-definition/{DEFINITION_NAME_PREFIX}*")]
    for name in sorted(compiled.job_definitions):
        if not name.startswith(DEFINITION_NAME_PREFIX):  # not content-hashed: named exactly
            definitions += [
                where.arn("batch", f"job-definition/{name}"),
                where.arn("batch", f"job-definition/{name}:*"),
            ]
    run_tag = f"{TAG_PREFIX}run"
    bucket = compiled.bucket
    prefix = compiled.datastore_root[len("s3://") + len(bucket) :].strip("/")

    def objects(key: str) -> str:
        return (
            f"arn:{partition}:s3:::{bucket}/{prefix}/{key}"
            if prefix
            else (f"arn:{partition}:s3:::{bucket}/{key}")
        )

    statements: list[dict[str, Any]] = [
        {
            "Sid": "SubmitToTheseQueues",
            "Effect": "Allow",
            "Action": "batch:SubmitJob",
            "Resource": sorted({_queue_arn(where, q) for q in compiled.queues}),
        },
        {
            "Sid": "SubmitWithBatchwrightDefinitions",
            "Effect": "Allow",
            "Action": "batch:SubmitJob",
            "Resource": definitions,
        },
        {
            # SubmitJob authorizes the job it creates, and its tags; only with the run tag.
            "Sid": "SubmitAndTagOwnJobs",
            "Effect": "Allow",
            "Action": ["batch:SubmitJob", "batch:TagResource"],
            "Resource": where.arn("batch", "job/*"),
            "Condition": {"Null": {f"aws:RequestTag/{run_tag}": "false"}},
        },
        {
            # DescribeJobs supports no resource-level permission.
            "Sid": "FollowJobs",
            "Effect": "Allow",
            "Action": "batch:DescribeJobs",
            "Resource": "*",
        },
        {
            # Job ids are assigned at submission: only the jobs carrying the run tag.
            "Sid": "StopOwnJobs",
            "Effect": "Allow",
            "Action": "batch:TerminateJob",
            "Resource": where.arn("batch", "job/*"),
            "Condition": {"Null": {f"aws:ResourceTag/{run_tag}": "false"}},
        },
        {
            "Sid": "SyncEventsRule",
            "Effect": "Allow",
            "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            "Resource": where.arn("events", f"rule/{SYNC_RULE}"),
        },
        {
            "Sid": "WriteDeploymentRecords",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": objects(layout.deployment_key(compiled.flow, "*", "*")),
        },
    ]
    states = compiled.definition.get("States", {})
    if any(state.get("Resource") == compiler.GET_OBJECT for state in _task_states(states)):
        statements.append(
            {
                "Sid": "ReadArraySizes",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": objects(f"{compiled.flow}/runs/*"),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


_ROLE_KINDS: tuple[Literal["states", "scheduler"], ...] = ("states", "scheduler")


def _trust(service: str, account: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                # Only on behalf of this account (the confused-deputy guard).
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
        ],
    }


def _scheduler_policy(state_machine_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartThisStateMachine",
                "Effect": "Allow",
                "Action": "states:StartExecution",
                "Resource": state_machine_arn,
            }
        ],
    }


# --- the actions ----------------------------------------------------------------------------


def upload_code_package(
    package: CodePackage, datastore_root: str, patience: aws.Patience | None = None
) -> str:
    """Put ``package`` in the datastore unless it already holds those exact bytes; returns
    its URL.

    Raises:
        DeployError: S3 refused or could not be reached.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from batchwright.datastore import open_storage
    from batchwright.datastore.storage import holds

    url = f"{datastore_root.rstrip('/')}/{package.key}"
    storage = open_storage(datastore_root, patience)
    try:
        if not (storage.keep(package.key) and holds(storage, package.key, package.sha256)):
            storage.write_bytes(package.key, package.data)
    except (ClientError, BotoCoreError) as error:
        raise DeployError(
            f"s3 PutObject of the code package {url} failed ({aws.describe_error(error)}). "
            "Check that the bucket exists and that your AWS identity may write to it "
            "(s3:GetObject, s3:PutObject)."
        ) from None
    return url


def deploy(
    compiled: CompiledFlow,
    *,
    name: str,
    region: str | None,
    user: str,
    role_arn: str | None = None,
    schedule: Schedule | None = None,
    scheduler_role_arn: str | None = None,
    session: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    today: str | None = None,
) -> Deployment:
    """Create or update the state machine ``name`` running ``compiled``.

    Registers each job definition that is not ACTIVE, creates or updates the state
    machine's role unless ``role_arn`` is given, creates or updates the state machine
    (tagged with the flow and ``user``), and creates or updates its schedule when
    ``schedule`` is given (deleting one an earlier deploy left otherwise).

    Raises:
        DeployError: an AWS call failed (names the call, the resource and the fix).
    """
    calls = _Calls(region, session)
    account = _account(calls)
    notices: list[str] = []
    stamp = today or datetime.now(UTC).date().isoformat()
    registered, reused = _register_definitions(calls, compiled, stamp, notices)

    found = _find_state_machine(calls, name)
    tags = {FLOW_TAG: compiled.flow, DEPLOYED_BY_TAG: user}
    machine_tags = {**tags, DATASTORE_TAG: compiled.datastore_root[:256]}
    role: Change = "given"
    if role_arn is None:
        role_arn, role = _ensure_role(
            calls,
            role_name(name, account.region, "states"),
            "states.amazonaws.com",
            state_machine_policy(
                compiled,
                partition=account.partition,
                account=account.account,
                region=account.region,
            ),
            account.account,
            {**tags, STATE_MACHINE_TAG: name},
            "--role-arn",
        )
    definition = json.dumps(compiled.definition)
    if found is None:
        arn = _retry_while_role_propagates(
            role != "given",
            sleep,
            lambda: calls(
                "stepfunctions",
                "create_state_machine",
                f"state machine {name}",
                "check the role's trust policy (states.amazonaws.com) and the definition",
                name=name,
                definition=definition,
                roleArn=role_arn,
                type="STANDARD",
                tags=[{"key": k, "value": v} for k, v in machine_tags.items()],
            )["stateMachineArn"],
        )
        state_machine: Change = "created"
    else:
        arn = found
        _retry_while_role_propagates(
            role != "given",
            sleep,
            lambda: calls(
                "stepfunctions",
                "update_state_machine",
                f"state machine {arn}",
                "check the role's trust policy (states.amazonaws.com) and the definition",
                stateMachineArn=arn,
                definition=definition,
                roleArn=role_arn,
            ),
        )
        calls(
            "stepfunctions",
            "tag_resource",
            f"state machine {arn}",
            "grant states:TagResource",
            resourceArn=arn,
            tags=[{"key": k, "value": v} for k, v in machine_tags.items()],
        )
        state_machine = "updated"

    schedule_arn: str | None = None
    schedule_change: Change = "absent"
    if schedule is not None:
        if scheduler_role_arn is None:
            scheduler_role_arn, _ = _ensure_role(
                calls,
                role_name(name, account.region, "scheduler"),
                "scheduler.amazonaws.com",
                _scheduler_policy(arn),
                account.account,
                {**tags, STATE_MACHINE_TAG: name},
                "--scheduler-role-arn",
            )
        schedule_arn, schedule_change = _ensure_schedule(
            calls, name, schedule, arn, scheduler_role_arn, sleep
        )
    else:
        if _delete_schedule(calls, name, arn, notices):
            schedule_change = "deleted"
            notices.append(
                f"the flow has no @schedule any more: schedule {name}, left from an "
                "earlier deploy, was deleted"
            )
        _delete_role(calls, role_name(name, account.region, "scheduler"), name)
    return Deployment(
        name=name,
        region=account.region,
        state_machine_arn=arn,
        state_machine=state_machine,
        role_arn=role_arn,
        role=role,
        registered_definitions=tuple(registered),
        reused_definitions=tuple(reused),
        schedule_arn=schedule_arn,
        schedule=schedule_change,
        scheduler_role_arn=scheduler_role_arn if schedule is not None else None,
        notices=tuple(notices),
    )


def _register_definitions(
    calls: _Calls, compiled: CompiledFlow, today: str, notices: list[str]
) -> tuple[list[str], list[str]]:
    """Registers each job definition that has no ACTIVE revision; stamps the reused ones
    as used today (``batchwright jobdefs prune`` reads the stamp)."""
    registered: list[str] = []
    reused: list[str] = []
    for name, request in sorted(compiled.job_definitions.items()):
        fix = "grant batch:DescribeJobDefinitions and batch:RegisterJobDefinition"
        found = calls(
            "batch",
            "describe_job_definitions",
            f"job definition {name}",
            fix,
            jobDefinitionName=name,
            status="ACTIVE",
        )["jobDefinitions"]
        if found:
            newest = max(found, key=lambda d: d["revision"])
            reused.append(name)
            if (newest.get("tags") or {}).get(LAST_USED_TAG) != today:
                try:
                    calls(
                        "batch",
                        "tag_resource",
                        str(newest["jobDefinitionArn"]),
                        "grant batch:TagResource",
                        resourceArn=newest["jobDefinitionArn"],
                        tags={LAST_USED_TAG: today},
                    )
                except DeployError as error:
                    notices.append(
                        f"could not record that the state machine uses {name} ({error}); "
                        "`batchwright jobdefs prune` may count it unused"
                    )
            continue
        body = request.kwargs()
        body["tags"] = {**body.get("tags", {}), LAST_USED_TAG: today}
        calls("batch", "register_job_definition", f"job definition {name}", fix, **body)
        registered.append(name)
    return registered, reused


def _find_state_machine(calls: _Calls, name: str) -> str | None:
    for machine in calls.pages(
        "stepfunctions",
        "list_state_machines",
        "stateMachines",
        "the state machines",
        "grant states:ListStateMachines",
    ):
        if machine.get("name") == name:
            return str(machine["stateMachineArn"])
    return None


def _ensure_role(
    calls: _Calls,
    name: str,
    service: str,
    policy: Mapping[str, Any],
    account: str,
    tags: Mapping[str, str],
    option: str,
) -> tuple[str, Change]:
    """Creates the role (or updates its trust and inline policy); its ARN and what was done.

    A role of that name that :func:`deploy` did not make for this state machine (no
    :data:`STATE_MACHINE_TAG` naming it) is refused, never rewritten.

    Raises:
        DeployError: a call failed, or the role is someone else's (``option`` passes one).
    """
    fix = "grant iam:GetRole, iam:CreateRole, iam:UpdateAssumeRolePolicy, iam:PutRolePolicy "
    fix += f"and iam:TagRole on role {name}, or pass {option}"
    trust = json.dumps(_trust(service, account))
    machine = tags.get(STATE_MACHINE_TAG, "")
    try:
        found = calls("iam", "get_role", f"role {name}", fix, RoleName=name)["Role"]
        arn = str(found["Arn"])
        owner = {t["Key"]: t["Value"] for t in found.get("Tags", [])}.get(STATE_MACHINE_TAG)
        if owner != machine:
            whose = (
                f"tagged {STATE_MACHINE_TAG}={owner}" if owner else f"no {STATE_MACHINE_TAG} tag"
            )
            raise DeployError(
                f"iam GetRole: role {name} already exists and was not made by batchwright for "
                f"state machine {machine} (it has {whose}), so it is not rewritten. Pass "
                f"{option} ARN to run with a role of your own, or delete role {name} and "
                "deploy again.",
                "NotOwned",
            )
        change: Change = "updated"
        calls(
            "iam",
            "update_assume_role_policy",
            f"role {name}",
            fix,
            RoleName=name,
            PolicyDocument=trust,
        )
        calls(
            "iam",
            "tag_role",
            f"role {name}",
            fix,
            RoleName=name,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    except DeployError as error:
        if not _is_missing(error, "NoSuchEntity"):
            raise
        arn = str(
            calls(
                "iam",
                "create_role",
                f"role {name}",
                fix,
                RoleName=name,
                Path=ROLE_PATH,
                AssumeRolePolicyDocument=trust,
                Description=f"batchwright: {service} for state machine "
                f"{tags.get(STATE_MACHINE_TAG, '')}"[:1000],
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )["Role"]["Arn"]
        )
        change = "created"
    calls(
        "iam",
        "put_role_policy",
        f"role {name}",
        fix,
        RoleName=name,
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(policy),
    )
    return arn, change


def _retry_while_role_propagates(
    retry: bool, sleep: Callable[[float], None], action: Callable[[], Any]
) -> Any:
    """``action()``, tried again while a role just created or changed is not yet
    assumable (IAM is eventually consistent)."""
    waited = 0.0
    while True:
        try:
            return action()
        except DeployError as error:
            message = str(error).lower()
            propagating = "assume" in message
            if not (retry and propagating and waited < ROLE_PROPAGATION_SECONDS):
                raise
        sleep(ROLE_PROPAGATION_PAUSE_SECONDS)
        waited += ROLE_PROPAGATION_PAUSE_SECONDS


def _ensure_schedule(
    calls: _Calls,
    name: str,
    schedule: Schedule,
    state_machine_arn: str,
    role_arn: str,
    sleep: Callable[[float], None],
) -> tuple[str, Change]:
    request: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": schedule.expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": state_machine_arn, "RoleArn": role_arn, "Input": SCHEDULED_INPUT},
        "Description": f"batchwright: runs state machine {name}",
    }
    if schedule.timezone:
        request["ScheduleExpressionTimezone"] = schedule.timezone
    fix = "grant scheduler:GetSchedule, scheduler:CreateSchedule, scheduler:UpdateSchedule "
    fix += "and iam:PassRole on the scheduler role"
    target = _schedule_target(calls, name, fix)
    if target is None:
        operation, change = "create_schedule", "created"
    elif target == state_machine_arn:
        operation, change = "update_schedule", "updated"
    else:
        raise DeployError(
            f"scheduler GetSchedule: schedule {name} already exists and starts "
            f"{target or 'no target'}, not state machine {state_machine_arn}, so it is not "
            "rewritten. Delete that schedule, or deploy under another --name.",
            "NotOwned",
        )
    answer = _retry_while_role_propagates(
        True,
        sleep,
        lambda: calls("scheduler", operation, f"schedule {name}", fix, **request),
    )
    return str(answer["ScheduleArn"]), change  # type: ignore[return-value]


def _schedule_target(calls: _Calls, name: str, fix: str) -> str | None:
    """The ARN the schedule ``name`` starts ("" without a target); None: no such schedule."""
    try:
        found = calls("scheduler", "get_schedule", f"schedule {name}", fix, Name=name)
    except DeployError as error:
        if _is_missing(error, "ResourceNotFoundException"):
            return None
        raise
    return str((found.get("Target") or {}).get("Arn", ""))


def _delete_schedule(calls: _Calls, name: str, state_machine_arn: str, notices: list[str]) -> bool:
    """Deletes the schedule ``name`` when it starts ``state_machine_arn``; whether it did.
    A schedule of that name that starts something else is left alone (a notice says so)."""
    target = _schedule_target(calls, name, "grant scheduler:GetSchedule")
    if target is None:
        return False
    if target != state_machine_arn:
        notices.append(
            f"schedule {name} starts {target or 'no target'}, not state machine "
            f"{state_machine_arn}: left alone"
        )
        return False
    try:
        calls(
            "scheduler",
            "delete_schedule",
            f"schedule {name}",
            "grant scheduler:DeleteSchedule",
            Name=name,
        )
    except DeployError as error:
        if _is_missing(error, "ResourceNotFoundException"):
            return False
        raise
    return True


def _delete_role(calls: _Calls, name: str, state_machine: str) -> bool:
    """Deletes the role ``name`` if :func:`deploy` made it for ``state_machine``."""
    fix = f"grant iam:GetRole, iam:DeleteRolePolicy and iam:DeleteRole on role {name}"
    try:
        role = calls("iam", "get_role", f"role {name}", fix, RoleName=name)["Role"]
    except DeployError as error:
        if _is_missing(error, "NoSuchEntity"):
            return False
        raise
    tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    if tags.get(STATE_MACHINE_TAG) != state_machine:
        return False  # not ours: never touched
    for policy in calls.pages(
        "iam", "list_role_policies", "PolicyNames", f"role {name}", fix, RoleName=name
    ):
        calls("iam", "delete_role_policy", f"role {name}", fix, RoleName=name, PolicyName=policy)
    calls("iam", "delete_role", f"role {name}", fix, RoleName=name)
    return True


def state_machine_arn(name_or_arn: str, *, region: str | None, session: Any = None) -> str:
    """The ARN of the state machine ``name_or_arn`` (an ARN is returned as it is).

    Raises:
        StateMachineNotFound: no state machine of that name in the region.
        DeployError: the listing failed.
    """
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    calls = _Calls(region, session)
    found = _find_state_machine(calls, name_or_arn)
    if found is None:
        where = calls.client("stepfunctions").meta.region_name
        raise StateMachineNotFound(
            f"there is no state machine named {name_or_arn} in region {where}. Deploy the "
            "flow first with `python FLOW.py step-functions create`, or pass --name (and "
            "--region) of the one you deployed."
        )
    return found


def deployed_configs(arn: str, *, region: str | None, session: Any = None) -> str | None:
    """The configs the state machine's ``start`` resolves parameter defaults with: the
    JSON (:meth:`~batchwright.configs.RunConfigs.to_json`) its start task carries in its
    environment, resolved when it was deployed; None when its definition has none.

    Raises:
        DeployError: DescribeStateMachine failed.
    """
    from batchwright.stepfunctions.deployed import CONFIGS_VARIABLE

    described = _Calls(region, session)(
        "stepfunctions",
        "describe_state_machine",
        f"state machine {arn}",
        "grant states:DescribeStateMachine on the state machine",
        stateMachineArn=arn,
    )
    try:
        definition = json.loads(str(described.get("definition") or "{}"))
    except ValueError:
        return None
    for state in _task_states(definition.get("States", {})):
        parameters = state.get("Parameters")
        overrides = parameters.get("ContainerOverrides") if isinstance(parameters, dict) else None
        environment = overrides.get("Environment") if isinstance(overrides, dict) else None
        for variable in environment if isinstance(environment, list) else ():
            if isinstance(variable, dict) and variable.get("Name") == CONFIGS_VARIABLE:
                value = variable.get("Value")
                return value if isinstance(value, str) else None
    return None


def trigger(
    name_or_arn: str,
    parameters: Mapping[str, str],
    *,
    region: str | None,
    run_id: str | None = None,
    session: Any = None,
) -> Triggered:
    """Starts an execution of the state machine with ``{"Parameters": parameters}``; its
    name is the run id (``run_id``, default a new one).

    Raises:
        StateMachineNotFound: no state machine of that name.
        DeployError: StartExecution failed.
    """
    from batchwright.scheduler import new_run_id

    arn = state_machine_arn(name_or_arn, region=region, session=session)
    run = run_id or new_run_id()
    calls = _Calls(region, session)
    started = calls(
        "stepfunctions",
        "start_execution",
        f"state machine {arn}",
        "grant states:StartExecution on the state machine",
        stateMachineArn=arn,
        name=run,
        input=json.dumps({"Parameters": dict(parameters)}),
    )
    try:
        tags = calls(
            "stepfunctions",
            "list_tags_for_resource",
            f"state machine {arn}",
            "grant states:ListTagsForResource",
            resourceArn=arn,
        )["tags"]
    except DeployError:
        tags = []  # only what the CLI shows after the run started is missing
    root = next((t["value"] for t in tags if t.get("key") == DATASTORE_TAG), None)
    return Triggered(run, str(started["executionArn"]), root)


def list_runs(
    name_or_arn: str,
    *,
    region: str | None,
    statuses: Sequence[str] = (),
    session: Any = None,
) -> list[Execution]:
    """The state machine's executions (newest first), only those in ``statuses`` when
    given (:data:`EXECUTION_STATUSES`).

    Raises:
        StateMachineNotFound: no state machine of that name.
        DeployError: ListExecutions failed.
    """
    arn = state_machine_arn(name_or_arn, region=region, session=session)
    calls = _Calls(region, session)
    found: list[Execution] = []
    for status in statuses or (None,):
        filters = {"statusFilter": status} if status else {}
        for item in calls.pages(
            "stepfunctions",
            "list_executions",
            "executions",
            f"state machine {arn}",
            "grant states:ListExecutions on the state machine",
            stateMachineArn=arn,
            **filters,
        ):
            found.append(
                Execution(
                    run_id=str(item["name"]),
                    status=str(item["status"]),
                    started_at=item.get("startDate"),
                    stopped_at=item.get("stopDate"),
                    arn=str(item["executionArn"]),
                )
            )
    found.sort(key=lambda e: (e.started_at is not None, e.started_at), reverse=True)
    return found


def delete(name: str, *, region: str | None, session: Any = None) -> Deletion:
    """Deletes the state machine ``name``, its schedule and the roles :func:`deploy` made
    for it. Idempotent: what is already gone is reported ``absent``.

    Raises:
        DeployError: a call failed.
    """
    calls = _Calls(region, session)
    account = _account(calls)
    arn = _find_state_machine(calls, name)
    notices: list[str] = []
    machine: Change = "absent"
    if arn is not None:
        calls(
            "stepfunctions",
            "delete_state_machine",
            f"state machine {arn}",
            "grant states:DeleteStateMachine on the state machine",
            stateMachineArn=arn,
        )
        machine = "deleted"
    # The ARN a schedule of this state machine starts, also when the machine is gone.
    expected = arn or account.arn("states", f"stateMachine:{name}")
    schedule: Change = "deleted" if _delete_schedule(calls, name, expected, notices) else "absent"
    roles = tuple(
        role
        for kind in _ROLE_KINDS
        if _delete_role(calls, role := role_name(name, account.region, kind), name)
    )
    if machine == "deleted":
        notices.append(
            "executions still running stop when the state machine is gone; the job "
            "definitions stay (batchwright jobdefs prune removes unused ones)"
        )
    return Deletion(name, account.region, machine, schedule, roles, tuple(notices))
