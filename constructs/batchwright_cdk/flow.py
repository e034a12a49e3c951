"""``FlowStateMachine``: a batchwright flow deployed as an AWS Step Functions state machine.

The flow is compiled at synthesis (construct time) by the runtime's own compiler
(:func:`batchwright.stepfunctions.compiler.compile_flow`) against the environment's
descriptor (contract 1, with deploy-time tokens in place of ARNs), so ``cdk synth``
refuses a flow a state machine cannot run with the compiler's message (step, key, value,
fix) before anything is deployed.

What one construct creates:

* ``JobDefinitions/<step>``: one ``AWS::Batch::JobDefinition`` per distinct job definition
  of the plan (named after the first step, in graph order, that uses it). No
  ``JobDefinitionName``: CloudFormation names it and the states submit to its ``Ref``
  (the ARN with its revision). A change of content updates the resource in place: a new
  revision of the same name, the old one kept ACTIVE
  (``ResourceRetentionPolicy.SkipDeregisterOnUpdate``), and the role may submit to every
  revision of the name, so executions started before a deploy (whose definition names
  the old revisions) can still submit their remaining steps. Not so when the resource
  itself goes away: a step removed from the flow (or a definition now first used by
  another step, hence under another construct id) deletes its resource, which
  deregisters the definition, and the role no longer names it; an execution started
  before that deploy then fails when it reaches that step. Deploy such a change when no
  execution is running. (Retaining removed definitions would not help: the role could
  not submit to them, and ``batchwright jobdefs prune`` cleans only ``batchwright-<hash>``
  definitions, not ones CloudFormation named.)
* ``CodePackage``: the flow's code package (:func:`batchwright.codepackage.build`: the
  flow's directory and the runtime, deterministic bytes) as a file asset; every task
  downloads it from ``s3://<asset bucket>/<asset key>`` and checks its SHA-256. The
  environment's job role may read that one object (policy ``CodePackageAccess``).
* ``Role``, ``Logs`` and ``Resource`` (the ``AWS::StepFunctions::StateMachine``): see
  :class:`FlowStateMachine` for what the role may do.
* ``Schedule``: an EventBridge Scheduler schedule starting an execution with input
  ``{"Parameters": {}}`` (every default), when the flow has ``@schedule``.

Where deployed flows are published: two stack outputs per flow, named after the flow
class (non-alphanumeric characters dropped), so the runtime and people find a deployed
flow by its name in the stack's outputs (or a ``cdk deploy --outputs-file`` JSON):

* ``BatchwrightFlow<FlowName>StateMachineArn``: the state machine's ARN;
* ``BatchwrightFlow<FlowName>StateMachineName``: its (CloudFormation-generated) name.

Hence one flow of a given name per stack.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from batchwright.batch.definition import JobDefinitionRequest
from batchwright.batch.jobenv import FORWARDED_VARIABLES
from batchwright.batch.options import TAG_PREFIX
from batchwright.codepackage import build as build_code_package
from batchwright.definition import FlowDefinition, import_flow_file, is_flow_class, load_definition
from batchwright.environment.assembly import evaluate
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.errors import UserInputError
from batchwright.identity import current_user
from batchwright.plan import make_plan
from batchwright.schedule import flow_schedule
from batchwright.stepfunctions import layout
from batchwright.stepfunctions.compiler import (
    GET_OBJECT,
    PUT_OBJECT,
    CodePackageLocation,
    CompiledFlow,
    compile_flow,
    deployment_environment,
)
from batchwright_cdk.descriptor import add_output, lazy_string
from batchwright_cdk.environment import BatchEnvironment
from batchwright_cdk.iam import _NagNotation
from batchwright_cdk.validation import fail

#: Stack output keys of a deployed flow: ``OUTPUT_PREFIX + <FlowName> + suffix``.
OUTPUT_PREFIX = "BatchwrightFlow"
ARN_OUTPUT_SUFFIX = "StateMachineArn"
NAME_OUTPUT_SUFFIX = "StateMachineName"
#: The rule Step Functions manages to learn when a ``batch:submitJob.sync`` job ends.
BATCH_EVENTS_RULE = "StepFunctionsGetEventsForBatchJobsRule"
#: What a scheduled execution gets: no Parameters, i.e. every default.
SCHEDULED_INPUT: Mapping[str, Any] = {"Parameters": {}}
#: Retention of the state machine's execution log group.
EXECUTION_LOG_RETENTION = logs.RetentionDays.ONE_MONTH
#: The ``--with`` option that puts every step without ``@batch`` on AWS Batch.
PROMOTE_OPTION = "batch"
#: Where the code packages are written for the asset to pick up (content-addressed).
_PACKAGE_DIRECTORY = "batchwright-code-packages"

#: Why each wildcard of the state machine's role is needed (keyed by statement id, or
#: ``*`` for the unscoped resources); each becomes a cdk-nag acknowledgment.
WILDCARD_REASONS: dict[str, str] = {
    "SubmitFlowJobs": "Every revision of the flow's own job definitions (each named by its "
    "Ref): executions started before a deploy name the revisions of their time, which the "
    "update keeps active; queues are named exactly.",
    "SubmitAndTagFlowJobs": "SubmitJob authorizes, and tags, the job it creates, whose id "
    "Batch assigns at submission; the condition allows only jobs carrying the runtime's run "
    "tag, which every state of the flow sets.",
    "StopFlowJobs": "Job ids are assigned by Batch at submission, so no ARN can be named in "
    "advance; Step Functions stops only the jobs of this account and region that carry the "
    "runtime's run tag.",
    "ReadArraySizes": "The foreach array sizes are written under the run's own key, whose run "
    "id is the execution name: only this flow's runs under the datastore prefix are readable.",
    "WriteDeploymentRecords": "The states write the execution's parameters and each failed "
    "step's record under the run's _deployment folder, whose run id is the execution name: "
    "only that folder of this flow's runs is writable.",
    "*": "batch:DescribeJobs and the CloudWatch Logs log-delivery actions Step Functions needs "
    "for execution logging support no resource-level permissions.",
}


@runtime_checkable
class DeployableEnvironment(Protocol):
    """What a flow deploys onto: a batchwright environment that can describe itself
    (:class:`~batchwright_cdk.environment.BatchEnvironment`)."""

    bucket: s3.IBucket
    datastore_prefix: str
    job_role: iam.IRole

    def descriptor(self) -> EnvironmentDescriptor:
        """The environment descriptor, with CDK tokens for deploy-time values."""
        ...


class FlowStateMachine(Construct):
    """A batchwright flow as a Step Functions state machine on a batchwright environment.

    Args:
        scope: Parent construct (any stack of the environment's account and region).
        construct_id: Construct id.
        environment: The environment the steps run on; anything with a ``descriptor()``,
            ``bucket``, ``datastore_prefix`` and ``job_role``
            (:class:`~batchwright_cdk.environment.BatchEnvironment`).
        flow: Path of the flow file, relative to the CDK app's working directory (or
            absolute). Its whole directory goes into the code package, as for ``run``.
        flow_class_name: The flow class to deploy. Omitted: the one flow class defined in
            the file (a file with several needs it).
        with_options: ``--with`` options, as ``run`` takes them (``"batch:memory=4096"``,
            ``"train/batch:gpu=1"``); they are part of every task's command too.
        promote_steps: Run the steps without ``@batch`` on AWS Batch with default options
            (the ``--with batch`` option is added for them). False: such a step is
            refused, since every step of a deployed flow runs on Batch.
        tags: The runs' tags (as ``run --tag``); every deployed run carries them.
        user: Whom the deployed runs belong to (their namespace, ``user:<name>``).
            Omitted: ``$BATCHWRIGHT_USER``, else the login name of the synthesizing
            process.
        state_machine_name: A fixed name for the state machine. Omitted:
            CloudFormation generates one (no fixed physical names: the output
            ``BatchwrightFlow<FlowName>StateMachineName`` gives it).
        schedule: Create the flow's ``@schedule`` (an EventBridge Scheduler schedule).
            False: deploy without it even if the flow has one. A flow without
            ``@schedule`` gets none either way.

    Attributes:
        flow_class, flow_name, flow_file: The flow deployed and its file.
        definition: The flow's checked definition (with the ``--with`` options used).
        compiled: The compiled flow (its ASL document with tokens, job definitions,
            queues).
        code_package: The code package asset.
        job_definitions: The ``batch.CfnJobDefinition`` per step that names it first.
        role: The state machine's role.
        log_group: The execution log group.
        state_machine: The ``sfn.StateMachine`` (construct id ``Resource``).
        schedule: The ``scheduler.Schedule``, or None.

    The role may only: ``batch:SubmitJob`` on exactly the queues the states use and on
    every revision of the flow's job definitions (``job-definition/<name>:*``, the name
    taken from each ``Ref``: an execution started before a deploy submits to the revisions
    of its time), and, for tagging on creation, on jobs carrying the run tag, with
    ``batch:TagResource``; ``batch:DescribeJobs`` (no resource level);
    ``batch:TerminateJob`` on this account's and region's jobs carrying the run tag;
    ``events:PutTargets``, ``events:PutRule``, ``events:DescribeRule`` on the
    ``StepFunctionsGetEventsForBatchJobsRule`` rule; ``s3:PutObject`` on
    ``<prefix>/<FlowName>/runs/*/_deployment/*`` of the datastore (the execution's
    parameters, the failed steps' records); ``s3:GetObject`` under
    ``<prefix>/<FlowName>/runs/`` when the flow has a foreach (the array sizes); with a
    bucket key, ``kms:GenerateDataKey`` (puts) and ``kms:Decrypt`` (reads) on that key;
    and what Step Functions' log delivery needs (added by CDK). Executions log
    ``ALL`` events (without execution data: the input holds parameter values); X-Ray
    tracing is off (no segment downstream of Batch would join the trace).

    Raises:
        CompileError: the flow cannot be a state machine (every reason, as ``compile_flow``
            says them).
        UserInputError: the flow file cannot be loaded, holds no (or several) flows, or a
            decorator, ``--with`` option or config is invalid.
        EnvironmentConfigError: ``environment`` cannot describe itself, or a flow of the
            same name is already in the stack.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: DeployableEnvironment,
        flow: str,
        flow_class_name: str | None = None,
        with_options: Sequence[str] = (),
        promote_steps: bool = True,
        tags: Sequence[str] = (),
        user: str | None = None,
        state_machine_name: str | None = None,
        schedule: bool = True,
    ):
        super().__init__(scope, construct_id)
        where = f"FlowStateMachine {construct_id!r}"
        if not callable(getattr(environment, "descriptor", None)):
            raise fail(
                where,
                "environment",
                type(environment).__name__,
                "cannot describe itself (it has no descriptor())",
                "Pass the BatchEnvironment construct (an imported environment offers grants "
                "only, not the queue capacities a flow is planned against)",
            )
        stack = cdk.Stack.of(self)
        self.environment = environment
        self.flow_file = str(Path(flow).resolve())
        self.flow_class = _load_flow_class(self.flow_file, flow_class_name)
        self.flow_name = self.flow_class.__name__
        output_name = re.sub(r"[^A-Za-z0-9]", "", self.flow_name)
        arn_key = f"{OUTPUT_PREFIX}{output_name}{ARN_OUTPUT_SUFFIX}"
        if stack.node.try_find_child(arn_key) is not None:
            raise fail(
                where,
                "flow",
                self.flow_name,
                "is already deployed in this stack (its outputs are named after the flow)",
                "Deploy each flow once per stack, or put the second one in another stack",
            )
        descriptor = environment.descriptor()
        self.definition = _definition(self.flow_class, with_options, promote_steps)

        # --- the code package, as a file asset --------------------------------------------
        package = build_code_package(Path(self.flow_file).parent)
        staged = Path(tempfile.gettempdir()) / _PACKAGE_DIRECTORY / f"{package.sha256}.tar.gz"
        if not staged.is_file():
            staged.parent.mkdir(parents=True, exist_ok=True)
            partial = staged.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(package.data)
            partial.replace(staged)  # atomic: a concurrent synth never reads half a file
        self.code_package = s3_assets.Asset(self, "CodePackage", path=str(staged))
        code_url = f"s3://{self.code_package.s3_bucket_name}/{self.code_package.s3_object_key}"

        # --- the state machine document ---------------------------------------------------
        self._definition_tokens: dict[str, str] = {}
        self._token_names: dict[str, str] = {}
        self._job_definition_resources: dict[str, batch.CfnJobDefinition] = {}
        self._scheduled = schedule and flow_schedule(self.flow_class) is not None
        self.compiled = self._compile(
            descriptor,
            CodePackageLocation(code_url, package.sha256),
            deployment_environment(
                user or current_user(), tags, _synthesis_environment(stack.region)
            ),
        )
        self.job_definitions = self._create_job_definitions()

        # --- who may read the code package ------------------------------------------------
        iam.Policy(
            self,
            "CodePackageAccess",
            statements=[
                iam.PolicyStatement(
                    sid="ReadCodePackage",
                    actions=["s3:GetObject"],
                    resources=[
                        self.code_package.bucket.arn_for_objects(self.code_package.s3_object_key)
                    ],
                )
            ],
        ).attach_to_role(environment.job_role)

        # --- role, logs, state machine ----------------------------------------------------
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"batchwright flow {self.flow_name}: submit and follow its Batch jobs",
        )
        statements = self._role_statements(environment)
        for statement in statements:
            self.role.add_to_policy(statement)
        self.log_group = logs.LogGroup(self, "Logs", retention=EXECUTION_LOG_RETENTION)
        self.state_machine = sfn.StateMachine(
            self,
            "Resource",
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(self.compiled.definition)
            ),
            role=self.role,
            state_machine_name=state_machine_name,
            comment=f"batchwright flow {self.flow_name}",
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
            tracing_enabled=False,
        )
        # The L2 makes the machine depend on its role and the role's policy; the role is
        # already a dependency through RoleArn's GetAtt (cfn-lint W3005), the policy is not.
        policy = self.role.node.try_find_child("DefaultPolicy")
        machine = self.state_machine.node.default_child
        if isinstance(policy, iam.Policy) and isinstance(machine, cdk.CfnResource):
            machine.add_override(
                "DependsOn",
                [stack.get_logical_id(policy.node.default_child)],  # type: ignore[arg-type]
            )
        _acknowledge(self.role, statements)
        cdk.Validations.of(self.state_machine).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SF2",
                reason="X-Ray tracing is off on purpose: the states only submit AWS Batch jobs, "
                "which join no trace; execution history and the ALL-level execution log "
                "cover each state, and tracing would need xray:* on every resource.",
            )
        )

        # --- schedule -----------------------------------------------------------------------
        self.schedule: scheduler.Schedule | None = None
        found = flow_schedule(self.flow_class) if schedule else None
        if found is not None:
            self.schedule = scheduler.Schedule(
                self,
                "Schedule",
                schedule=scheduler.ScheduleExpression.expression(
                    found.expression,
                    cdk.TimeZone.of(found.timezone) if found.timezone else None,
                ),
                target=scheduler_targets.StepFunctionsStartExecution(
                    self.state_machine,
                    input=scheduler.ScheduleTargetInput.from_object(dict(SCHEDULED_INPUT)),
                ),
                description=f"batchwright flow {self.flow_name} (@schedule)",
            )

        # --- where the deployed flow is published -------------------------------------------
        # In the environment's descriptor when both share a stack (from another stack, the
        # environment would depend on the flow's stack, which depends on it: a cycle).
        if isinstance(environment, BatchEnvironment) and cdk.Stack.of(environment) is stack:
            environment.add_flow(self.flow_name, self.state_machine.state_machine_arn)
        add_output(
            stack,
            arn_key,
            self.state_machine.state_machine_arn,
            f"batchwright flow {self.flow_name}: its state machine",
        )
        add_output(
            stack,
            f"{OUTPUT_PREFIX}{output_name}{NAME_OUTPUT_SUFFIX}",
            self.state_machine.state_machine_name,
            f"batchwright flow {self.flow_name}: its state machine's name",
        )

    # --- compilation --------------------------------------------------------------------------

    def _compile(
        self,
        descriptor: EnvironmentDescriptor,
        code_package: CodePackageLocation,
        environment: Mapping[str, str],
    ) -> CompiledFlow:
        plan = make_plan(
            self.flow_name,
            self.definition.decorators,
            descriptor,
            parallel_steps=self.definition.parallel_steps,
        )
        # The bucket is a token; only the prefix enters a States.Format template.
        prefix = descriptor.prefix.strip("/")
        root = f"s3://{descriptor.bucket}" + (f"/{prefix}" if prefix else "")
        return compile_flow(
            self.definition,
            plan,
            datastore_root=root,
            code_package=code_package,
            environment=environment,
            flow_file=Path(self.flow_file).name,
            definition_reference=self._definition_reference,
            scheduled=self._scheduled,
        )

    def _definition_reference(self, request: JobDefinitionRequest) -> str:
        """What a state names a job definition by: its resource's ``Ref`` (the ARN), which
        exists only once compilation has found every definition, hence lazily."""
        if request.name not in self._definition_tokens:
            name = request.name
            token = lazy_string(lambda: self._job_definition_resources[name].ref)
            self._definition_tokens[request.name] = token
            self._token_names[token] = request.name
        return self._definition_tokens[request.name]

    def _create_job_definitions(self) -> dict[str, batch.CfnJobDefinition]:
        """One resource per job definition, named after the first step that uses it."""
        scope = Construct(self, "JobDefinitions")
        created: dict[str, batch.CfnJobDefinition] = {}
        for state, parameters in _task_parameters(self.compiled.definition["States"]):
            token = parameters.get("JobDefinition")
            name = self._token_names.get(token) if isinstance(token, str) else None
            if name is None or name in self._job_definition_resources:
                continue
            step = state.split(".", 1)[0]
            resource = job_definition(scope, step, self.compiled.job_definitions[name])
            self._job_definition_resources[name] = resource
            created[step] = resource
        return created

    # --- the role -----------------------------------------------------------------------------

    def _role_statements(self, environment: DeployableEnvironment) -> list[iam.PolicyStatement]:
        stack = cdk.Stack.of(self)
        run_tag = f"{TAG_PREFIX}run"
        jobs = stack.format_arn(service="batch", resource="job", resource_name="*")
        statements = [
            iam.PolicyStatement(
                sid="SubmitFlowJobs",
                actions=["batch:SubmitJob"],
                resources=[
                    *(_queue_arn(stack, queue) for queue in self.compiled.queues),
                    *(
                        _every_revision(stack, resource)
                        for resource in self._job_definition_resources.values()
                    ),
                ],
            ),
            iam.PolicyStatement(
                sid="SubmitAndTagFlowJobs",
                actions=["batch:SubmitJob", "batch:TagResource"],
                resources=[jobs],
                conditions={"Null": {f"aws:RequestTag/{run_tag}": "false"}},
            ),
            iam.PolicyStatement(
                sid="FollowFlowJobs",
                actions=["batch:DescribeJobs"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="StopFlowJobs",
                actions=["batch:TerminateJob"],
                resources=[jobs],
                conditions={"Null": {f"aws:ResourceTag/{run_tag}": "false"}},
            ),
            iam.PolicyStatement(
                sid="ManageBatchJobEventsRule",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events", resource="rule", resource_name=BATCH_EVENTS_RULE
                    )
                ],
            ),
        ]
        prefix = environment.datastore_prefix.strip("/")
        key = environment.bucket.encryption_key
        states = self.compiled.definition["States"]
        if _has_state_with(states, PUT_OBJECT):
            records = layout.deployment_key(self.flow_name, "*", "*")
            statements.append(
                iam.PolicyStatement(
                    sid="WriteDeploymentRecords",
                    actions=["s3:PutObject"],
                    resources=[
                        environment.bucket.arn_for_objects(
                            f"{prefix}/{records}" if prefix else records
                        )
                    ],
                )
            )
            if key is not None:
                statements.append(
                    iam.PolicyStatement(
                        sid="EncryptDeploymentRecords",
                        actions=["kms:GenerateDataKey"],
                        resources=[key.key_arn],
                    )
                )
        if _has_state_with(states, GET_OBJECT):
            runs = f"{prefix}/{self.flow_name}/runs/*" if prefix else f"{self.flow_name}/runs/*"
            statements.append(
                iam.PolicyStatement(
                    sid="ReadArraySizes",
                    actions=["s3:GetObject"],
                    resources=[environment.bucket.arn_for_objects(runs)],
                )
            )
            if key is not None:
                statements.append(
                    iam.PolicyStatement(
                        sid="DecryptArraySizes",
                        actions=["kms:Decrypt"],
                        resources=[key.key_arn],
                    )
                )
        return statements


# --- the flow -------------------------------------------------------------------------------


def _load_flow_class(flow_file: str, class_name: str | None) -> type:
    """The flow class of ``flow_file`` (the one defined there, or the one named).

    Raises:
        UserInputError: no such file, or not exactly one flow class to choose.
    """
    path = Path(flow_file)
    if not path.is_file():
        raise UserInputError(
            f"FlowStateMachine: no flow file {flow_file} (the path is relative to the CDK "
            f"app's working directory, {os.getcwd()}). Pass the flow file's path."
        )
    module_name = f"batchwright_deployed_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}"
    module = import_flow_file(flow_file, module_name)
    flows = {
        value.__name__: value
        for value in vars(module).values()
        if is_flow_class(value) and getattr(value, "__module__", None) == module_name
    }
    if class_name is not None:
        if class_name not in flows:
            raise UserInputError(
                f"FlowStateMachine: {flow_file} defines no flow class {class_name!r} (it "
                f"defines {', '.join(sorted(flows)) or 'none'}). Pass one of those as "
                "flow_class_name."
            )
        return flows[class_name]
    if len(flows) != 1:
        raise UserInputError(
            f"FlowStateMachine: {flow_file} defines {len(flows)} flow classes "
            f"({', '.join(sorted(flows)) or 'none'}); pass flow_class_name= to choose one, "
            "or put one flow per file."
        )
    return next(iter(flows.values()))


def _definition(
    flow_class: type, with_options: Sequence[str], promote_steps: bool
) -> FlowDefinition:
    """The flow's definition; with ``promote_steps``, the steps without ``@batch`` get it
    through ``--with batch`` (added only when a step lacks it and no ``--with batch`` for
    every step is there already: on a step that has ``@batch``, a bare ``--with batch``
    changes nothing)."""
    from batchwright.decorators import parse_with_option

    options = list(with_options)
    definition = load_definition(flow_class, options)
    if not promote_steps:
        return definition
    has_global_batch = any(
        (parsed := parse_with_option(option)).decorator.name == PROMOTE_OPTION
        and parsed.step is None
        for option in options
    )
    lacking = [
        step
        for step, decorators in definition.decorators.items()
        if not any(d.name == PROMOTE_OPTION for d in decorators)
    ]
    if has_global_batch or not lacking:
        return definition
    return load_definition(flow_class, [*options, PROMOTE_OPTION])


def _synthesis_environment(region: str) -> dict[str, str]:
    """This process's variables, as the jobs' environment is derived from them, except
    that a region it names becomes the stack's: a synth from a shell set to another region
    must not send the jobs there."""
    environ = dict(os.environ)
    for name in FORWARDED_VARIABLES:
        if name in environ:
            environ[name] = region
    return environ


# --- job definitions --------------------------------------------------------------------------


def job_definition(
    scope: Construct, construct_id: str, request: JobDefinitionRequest
) -> batch.CfnJobDefinition:
    """The ``AWS::Batch::JobDefinition`` of a ``RegisterJobDefinition`` request, without a
    fixed name.

    The request's camelCase body is what the L1's own properties are named (the
    ``RegisterJobDefinition`` API and the CloudFormation schema share their names up to
    the first letter's case), so the L1 renders CloudFormation's PascalCase itself, with
    free-form maps (log options, tags, parameters) kept as they are. What the L1 would
    drop (a key it does not know) is refused here rather than lost.

    Raises:
        EnvironmentConfigError: the body holds a key CloudFormation has no property for.
    """
    body = {k: v for k, v in request.kwargs().items() if k != "jobDefinitionName"}
    tags = body.pop("tags", None)
    props = {_snake(key): value for key, value in body.items()}
    known = set(_JOB_DEFINITION_PROPS)
    unknown = sorted(set(props) - known)
    if unknown:
        raise fail(
            f"job definition {request.name}",
            unknown[0],
            props[unknown[0]],
            "has no AWS::Batch::JobDefinition property",
            "Run the step with `run` (the job spec has outgrown the CloudFormation resource)",
        )
    resource = batch.CfnJobDefinition(
        scope,
        construct_id,
        **props,
        tags=tags,
        # Executions started before a deploy still submit to the revision they name.
        resource_retention_policy={"skipDeregisterOnUpdate": True},
    )
    rendered = resource._render_properties(body)
    lost = list(_lost_keys(body, rendered, ""))
    if lost:
        raise fail(
            f"job definition {request.name}",
            lost[0],
            "(in the RegisterJobDefinition body)",
            "has no AWS::Batch::JobDefinition property, so CloudFormation would drop it",
            "Run the step with `run` (the job spec has outgrown the CloudFormation resource)",
        )
    return resource


#: The L1's keyword arguments a ``RegisterJobDefinition`` body may fill (tags aside).
_JOB_DEFINITION_PROPS = (
    "type",
    "container_properties",
    "node_properties",
    "ecs_properties",
    "eks_properties",
    "consumable_resource_properties",
    "parameters",
    "platform_capabilities",
    "propagate_tags",
    "retry_strategy",
    "scheduling_priority",
    "timeout",
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _lost_keys(given: Any, rendered: Any, path: str) -> Iterator[str]:
    """The keys of ``given`` (camelCase) with no counterpart in ``rendered`` (PascalCase)."""
    if isinstance(given, Mapping):
        if not isinstance(rendered, Mapping):
            yield path or "(body)"
            return
        by_lower = {str(key).lower(): value for key, value in rendered.items()}
        for key, value in given.items():
            where = f"{path}.{key}" if path else key
            if key.lower() not in by_lower:
                yield where
            else:
                yield from _lost_keys(value, by_lower[key.lower()], where)
    elif isinstance(given, list):
        if not isinstance(rendered, list) or len(rendered) != len(given):
            yield path
            return
        for index, (item, out) in enumerate(zip(given, rendered, strict=True)):
            yield from _lost_keys(item, out, f"{path}[{index}]")


# --- helpers -------------------------------------------------------------------------------


def _states(states: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state, those of Parallel branches included, in document order."""
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", ()):
            yield from _states(branch["States"])


def _task_parameters(states: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The name and Parameters of every Batch task state, in document order."""
    for name, state in _states(states):
        if state.get("Type") == "Task" and isinstance(state.get("Parameters"), Mapping):
            yield name, state["Parameters"]


def _has_state_with(states: Mapping[str, Any], resource: str) -> bool:
    return any(state.get("Resource") == resource for _, state in _states(states))


def _queue_arn(stack: cdk.Stack, queue: str) -> str:
    """The ARN of a queue as the plan names it: the descriptor's ARN (a token), an ARN, or
    a name (a queue outside the environment, by ``@batch(queue=...)``)."""
    if cdk.Token.is_unresolved(queue) or queue.startswith("arn:"):
        return queue
    return stack.format_arn(service="batch", resource="job-queue", resource_name=queue)


def _every_revision(stack: cdk.Stack, resource: batch.CfnJobDefinition) -> str:
    """The ARN of every revision of a job definition resource: its ``Ref`` is the ARN of
    one revision (``arn:...:job-definition/NAME:REV``), whose NAME every revision shares."""
    name = cdk.Fn.select(1, cdk.Fn.split("/", cdk.Fn.select(5, cdk.Fn.split(":", resource.ref))))
    return stack.format_arn(
        service="batch", resource="job-definition", resource_name=cdk.Fn.join("", [name, ":*"])
    )


class _NagIdNotation(_NagNotation):
    """cdk-nag's notation, with a function it leaves as it is written as its
    ``JSON.stringify`` (no spaces): the job definition names split out of a ``Ref``."""

    def unevaluated(self, function: str, argument: Any) -> str:
        return json.dumps({function: argument}, separators=(",", ":"))


def _nag_id_text(value: Any) -> str:
    """A resolved value as cdk-nag writes it in a finding id."""
    text = evaluate(value, _NagIdNotation())
    return text if isinstance(text, str) else json.dumps(value, separators=(",", ":"))


def _acknowledge(role: iam.Role, statements: Sequence[iam.PolicyStatement]) -> None:
    """cdk-nag's IAM5 finding for each wildcard resource of ``statements`` (and the
    log-delivery ``*`` CDK adds for execution logging), with its reason."""
    stack = cdk.Stack.of(role)
    acknowledgments: dict[str, str] = {
        "AwsSolutions-IAM5[Resource::*]": WILDCARD_REASONS["*"],
    }
    for statement in statements:
        reason = WILDCARD_REASONS.get(statement.sid or "")
        if reason is None:
            continue
        for resource in statement.resources:
            text = _nag_id_text(stack.resolve(resource))
            if "*" in text:
                acknowledgments.setdefault(f"AwsSolutions-IAM5[Resource::{text}]", reason)
    cdk.Validations.of(role).acknowledge(
        *(cdk.Acknowledgment(id=rule, reason=reason) for rule, reason in acknowledgments.items())
    )
