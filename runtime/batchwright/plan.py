"""The plan of a run: for every step, where it runs and whether it can, before any submission.

:func:`make_plan` is pure: from each step's decorators and the environment descriptor it
decides every step's :class:`~batchwright.policy.StepPolicy` (backend, retries, timeout,
and for ``@batch`` steps the checked options and the queue), routes every ``@batch`` step
(:func:`batchwright.environment.routing.route`), builds the job definition it would
register (:func:`batchwright.batch.definition.build_job_definition`, which also refuses
options the queue's platform lacks) and collects notices (e.g. a Fargate size rounded
up) and warnings (e.g. an image that may lack boto3). A step with ``secrets`` that
``--run-batch-locally`` would run on this machine is refused unless the launching shell
sets its variables: only ECS fetches secrets, on AWS Batch. Without an environment, or
for a queue outside it, the checks that need no queue still run
(:func:`batchwright.environment.routing.check_anywhere`), and the step's reason says which
checks could not be made. Everything that can be known without AWS is decided
here, and read from decorators here only: the scheduler and the backends receive the
policies.

:func:`live_check` is the first AWS call of a run: one ``DescribeJobQueues`` for every
queue the plan uses and one ``DescribeComputeEnvironments`` for their compute
environments. It refuses queues that are not ENABLED/VALID or have no usable compute
environment, and completes steps sent to a queue outside the environment (whose platform
only AWS knows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchwright.backends import choose_backend_name, wanted_but_missing
from batchwright.batch.definition import JobDefinitionRequest, build_job_definition, check_timeout
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import (
    PLATFORMS,
    Platform,
    QueueTarget,
    implied_platform,
    platform_keys,
    resolve_resources,
)
from batchwright.costs import Estimate, Footprint, estimate
from batchwright.environment.descriptor import EnvironmentDescriptor, QueueDescription
from batchwright.environment.instances import lookup
from batchwright.environment.routing import (
    check_anywhere,
    describe_request,
    most_nodes,
    on_demand_counterpart,
    route,
)
from batchwright.environment.sources import is_placeholder
from batchwright.errors import BatchwrightError, PlanError
from batchwright.policy import DEFAULT_RECLAIMS_BEFORE_ON_DEMAND, BatchJobPolicy, StepPolicy

#: The verdict of a step that can run where it was planned.
OK = "ok"
#: DescribeJobQueues / DescribeComputeEnvironments take at most this many names per call.
DESCRIBE_PAGE = 100


@dataclass(frozen=True)
class StepPlan:
    """Where one step runs, and whether it can."""

    #: What the scheduler and the backend receive.
    policy: StepPolicy
    #: The checked ``@batch`` options, for ``@batch`` steps (also when they run locally).
    options: BatchOptions | None = None
    #: ``"ok"`` or the refusal message (what, where, value, fix).
    verdict: str = OK
    #: Why this queue (or why local).
    reason: str = ""
    #: The queue as submitted: the descriptor's ARN or the name/ARN the step gave.
    queue: str | None = None
    #: The queue's key in the environment, when it is one of the environment's queues.
    queue_key: str | None = None
    platform: str | None = None
    #: Instance types of the queue that can hold the request, smallest first.
    instance_types: tuple[str, ...] = ()
    #: For a Spot queue: the on-demand queue an attempt moves to after repeated reclaims.
    on_demand_queue_key: str | None = None
    job_definition: JobDefinitionRequest | None = None
    #: The per-task resources as submitted (vCPU, memory MiB, GPU), once the platform is known.
    resources: tuple[str, int, int] | None = None
    notices: tuple[str, ...] = ()
    #: What will work but likely not as the user expects (e.g. an image that may lack
    #: boto3); shown as warnings, never refusals.
    warnings: tuple[str, ...] = ()
    #: A parallel step (``num_parallel``): one multi-node job, one instance per node.
    parallel: bool = False
    #: Its node count, when the flow gives it as a literal (else known at run time).
    nodes: int | None = None
    #: The most nodes its queue can run at once (one instance per node), when known.
    max_nodes: int | None = None

    @property
    def step(self) -> str:
        """The step's name."""
        return self.policy.step

    @property
    def ok(self) -> bool:
        """Whether the step can run as planned."""
        return self.verdict == OK

    @property
    def is_batch(self) -> bool:
        """Whether the step is a ``@batch`` step."""
        return self.options is not None

    @property
    def backend(self) -> str:
        """``"batch"`` for a ``@batch`` step, else ``"local"`` (what the step asks for)."""
        return "batch" if self.is_batch else "local"

    @property
    def target(self) -> QueueTarget | None:
        """The queue and its defaults; ``None`` until known (a queue outside the
        environment is completed by :func:`live_check`)."""
        return self.policy.batch.target if self.policy.batch else None

    def job_definition_shape(self) -> dict[str, Any] | None:
        """The job definition's essentials, for people (``plan``) and ``plan --json``."""
        if self.job_definition is None:
            return None
        body = self.job_definition.body
        node_ranges = body.get("nodeProperties", {}).get("nodeRangeProperties", [])
        container = body.get("containerProperties") or (
            node_ranges[0]["container"] if node_ranges else {}
        )
        shape: dict[str, Any] = {
            "name": self.job_definition.name,
            "image": container.get("image"),
            "platform_capabilities": list(body.get("platformCapabilities", [])),
        }
        if node_ranges:
            shape["type"] = "multinode"
            shape["nodes"] = self.nodes
        if self.resources is not None:
            vcpus, memory, gpu = self.resources
            shape.update(vcpus=vcpus, memory_mib=memory, gpu=gpu)
        linux = container.get("linuxParameters") or {}
        for source, key, out in (
            (container, "jobRoleArn", "job_role"),
            (container, "executionRoleArn", "execution_role"),
            (container, "privileged", "privileged"),
            (linux, "sharedMemorySize", "shared_memory_mib"),
            (linux, "maxSwap", "max_swap_mib"),
            (linux, "swappiness", "swappiness"),
        ):
            if key in source:
                shape[out] = source[key]
        if linux.get("devices"):
            shape["devices"] = [d["containerPath"] for d in linux["devices"]]
        if container.get("secrets"):
            # The variable names only: where each comes from stays in the definition.
            shape["secrets"] = [secret["name"] for secret in container["secrets"]]
        if linux.get("tmpfs"):
            shape["tmpfs"] = [f"{t['containerPath']} ({t['size']} MiB)" for t in linux["tmpfs"]]
        if "ephemeralStorage" in container:
            shape["ephemeral_storage_gib"] = container["ephemeralStorage"]["sizeInGiB"]
        logs = container.get("logConfiguration")
        if logs:
            shape["log_driver"] = logs.get("logDriver")
        if "timeout" in body:
            shape["timeout_seconds"] = body["timeout"]["attemptDurationSeconds"]
        return shape

    @property
    def cost(self) -> Estimate | None:
        """The estimated cost per hour of one of its tasks while it runs (``None`` for a
        step that does not run on Batch, or one the price table cannot price)."""
        job = self.policy.batch
        if not self.ok or job is None or job.footprint is None:
            return None
        return estimate(job.footprint)

    def to_json(self) -> dict[str, Any]:
        """One object of ``plan --json``."""
        cost = self.cost
        return {
            "step": self.step,
            "backend": self.backend,
            "queue": self.queue,
            "queue_key": self.queue_key,
            "platform": self.platform,
            "instance_types": list(self.instance_types),
            "parallel": self.parallel,
            "nodes": self.nodes,
            "on_demand_queue_key": self.on_demand_queue_key,
            "verdict": self.verdict,
            "reason": self.reason,
            "job_definition": self.job_definition_shape(),
            "notices": list(self.notices),
            "warnings": list(self.warnings),
            "usd_per_hour": round(cost.usd_per_hour, 6) if cost else None,
            "cost_basis": cost.basis if cost else None,
        }


@dataclass(frozen=True)
class Plan:
    """The plan of one flow on one environment (or none)."""

    flow: str
    steps: tuple[StepPlan, ...]
    environment: EnvironmentDescriptor | None = None
    #: ``--run-batch-locally``: ``@batch`` steps are planned but run on the local backend.
    run_batch_locally: bool = False
    #: Whether :func:`live_check` confirmed the queues.
    live_checked: bool = field(default=False)

    @property
    def ok(self) -> bool:
        """Whether every step can run as planned."""
        return all(s.ok for s in self.steps)

    @property
    def refusals(self) -> list[str]:
        """The refusal messages, one per refused step, in graph order."""
        return [s.verdict for s in self.steps if not s.ok]

    @property
    def batch_steps(self) -> list[StepPlan]:
        """The ``@batch`` steps."""
        return [s for s in self.steps if s.is_batch]

    @property
    def policies(self) -> dict[str, StepPolicy]:
        """Each step's policy, by step name: what the scheduler runs the flow with."""
        return {s.step: s.policy for s in self.steps}

    def step(self, name: str) -> StepPlan:
        """The plan of step ``name`` (KeyError when the flow has no such step)."""
        for s in self.steps:
            if s.step == name:
                return s
        raise KeyError(name)

    def to_json(self) -> list[dict[str, Any]]:
        """``plan --json``: one object per step."""
        return [s.to_json() for s in self.steps]


# --- planning -----------------------------------------------------------------------------


def _decorator(decorators: Iterable[Any], name: str) -> Any | None:
    return next((d for d in decorators if getattr(d, "name", None) == name), None)


def step_policy(step: str, decorators: Sequence[Any], *, run_batch_locally: bool) -> StepPolicy:
    """The step's backend, retries and timeout, read from its checked decorators (the one
    place they are read); the job settings of ``@batch`` steps are added by the plan."""
    retry = _decorator(decorators, "retry")
    timeout = _decorator(decorators, "timeout")
    backend = choose_backend_name(decorators)
    if backend == "batch" and run_batch_locally:
        backend = "local"
    return StepPolicy(
        step=step,
        backend=backend,
        retries=int(retry.attributes["times"]) if retry else 0,
        retry_delay_seconds=60.0 * float(retry.attributes["minutes_between_retries"])
        if retry
        else 0.0,
        timeout_seconds=float(timeout.total_seconds) if timeout else None,
        catch=_decorator(decorators, "catch") is not None,
    )


def queue_target(
    environment: EnvironmentDescriptor | None,
    queue: str,
    platform: Platform,
    key: str | None = None,
    *,
    assign_public_ip: bool = True,
) -> QueueTarget:
    """The target of a queue, with the environment's defaults when there is one; ``key``
    is the queue's key in the environment (messages name the queue by it) and
    ``assign_public_ip`` whether its Fargate jobs need a public IP (True when unknown, as
    for a queue outside the environment)."""
    if environment is None:
        return QueueTarget(
            queue=queue, platform=platform, key=key, assign_public_ip=assign_public_ip
        )
    return QueueTarget(
        queue=queue,
        platform=platform,
        job_role_arn=environment.job_role_arn or None,
        execution_role_arn=environment.execution_role_arn or None,
        default_image=environment.default_image or None,
        log_group=environment.log_group or None,
        region=environment.region or None,
        key=key,
        assign_public_ip=assign_public_ip,
    )


def environment_target(environment: EnvironmentDescriptor, queue: QueueDescription) -> QueueTarget:
    """The target of one of the environment's queues, as its descriptor describes it."""
    return queue_target(
        environment,
        queue.arn,
        queue.platform,
        queue.key,
        assign_public_ip=queue.assign_public_ip,
    )


def _targeted(
    plan: StepPlan,
    target: QueueTarget,
    on_demand: QueueTarget | None = None,
    reclaims_before_on_demand: int = DEFAULT_RECLAIMS_BEFORE_ON_DEMAND,
) -> StepPlan:
    """The plan of a step whose queue is known: its job settings, job definition and
    resources; a platform refusal (e.g. ephemeral_storage on EC2) becomes its verdict."""
    assert plan.options is not None
    try:
        definition = build_job_definition(
            plan.options,
            target,
            timeout_seconds=plan.policy.batch_timeout_seconds,
            multi_node=plan.parallel,
        )
        resources = resolve_resources(plan.options, target)
    except BatchwrightError as error:
        return dataclasses.replace(plan, verdict=str(error))
    policy = plan.policy
    warnings = plan.warnings
    if policy.backend == "batch":
        warnings += _image_warnings(plan.options, target)
        instance_type = (
            None if target.is_fargate or not plan.instance_types else plan.instance_types[0]
        )
        held = (float(resources.vcpus), resources.memory, resources.gpu)
        whole = lookup(instance_type) if plan.parallel and instance_type else None
        if whole is not None:
            # A node of a multi-node job has its instance to itself: it costs all of it.
            held = (float(whole.vcpus), whole.memory_mib, whole.gpus)
        footprint = Footprint(
            *held,
            target.platform,
            target.region,
            instance_type,
            instance_type_estimated=True,
        )
        job = BatchJobPolicy(
            plan.options,
            target,
            on_demand,
            reclaims_before_on_demand,
            footprint,
            node_instance_type=instance_type if plan.parallel else None,
            max_nodes=plan.max_nodes,
        )
        policy = dataclasses.replace(policy, batch=job)
    return dataclasses.replace(
        plan,
        policy=policy,
        job_definition=definition,
        resources=(resources.vcpus, resources.memory, resources.gpu),
        notices=plan.notices + tuple(str(n) for n in resources.notices),
        warnings=warnings,
    )


def _image_warnings(options: BatchOptions, target: QueueTarget) -> tuple[str, ...]:
    """A warning when the step's image is not the environment's job image, which has
    boto3 pinned: the job bootstrap pip-installs boto3 into images that lack it."""
    image, job_image = options.image, target.default_image
    if image is None or job_image is None or image == job_image:
        return ()
    named = "" if is_placeholder(job_image) else f" ({job_image})"
    return (
        f"{options.location}, @batch: image {image!r} is not the environment's job image"
        f"{named}: if it lacks boto3, every job pip-installs it at start (slower, unpinned, "
        "needs internet). Build your image FROM the environment's job image, or add boto3 "
        "to it.",
    )


def _secrets_run_locally(
    plan: StepPlan, options: BatchOptions, local_variables: Collection[str]
) -> StepPlan:
    """A step with ``secrets`` run on this machine: ECS fetches them only for a job on AWS
    Batch, so each variable must come from the launching shell (local tasks inherit its
    environment), or the step would run with them missing."""
    names = options.secret_names
    missing = [name for name in names if name not in local_variables]
    if not missing:
        notice = (
            f"{options.location}, @batch: secrets {', '.join(names)} come from this shell's "
            "environment (--run-batch-locally); on AWS Batch, ECS fetches them."
        )
        return dataclasses.replace(plan, notices=(*plan.notices, notice))
    unset = ", ".join(missing)
    return dataclasses.replace(
        plan,
        verdict=f"{options.location}, @batch: secrets {', '.join(names)} are fetched by ECS "
        "when the job starts on AWS Batch; --run-batch-locally runs the step on this "
        f"machine, where nothing fetches them, and {unset} "
        f"{'is' if len(missing) == 1 else 'are'} not set in this shell. Run the step on AWS "
        f"Batch (without --run-batch-locally), or set {unset} in your shell for local runs.",
    )


def _unchecked(
    options: BatchOptions, environment: EnvironmentDescriptor | None, *, locally: bool
) -> str:
    """The reason of a step planned without an environment queue: what was checked, and
    what could not be (and when it will be, if ever)."""
    platform = implied_platform(options)
    needs = (
        f"; its options need {platform} ({', '.join(platform_keys(options)[platform])})"
        if platform
        else ""
    )
    checked = (
        "checked: the options, their combinations, and that an instance type or Fargate "
        f"size AWS Batch offers holds {describe_request(options)}{needs}"
    )
    if options.queue is None:
        return (
            "no environment: runs on the local backend (--run-batch-locally); "
            f"{checked}; not checked without an environment: which queue takes it, that the "
            "queue exists, its platform, and the fit on its instance types"
        )
    head = (
        f"named by @batch(queue=...), not a queue of environment '{environment.name}'"
        if environment is not None
        else "named by @batch(queue=...); no environment"
    )
    later = (
        "not checked: that the queue exists and its platform (--run-batch-locally makes no "
        "AWS call)"
        if locally
        else "the queue and its platform are read from AWS before submitting"
    )
    return f"{head}; {checked}; {later}; the fit on its instance types is not checked"


def _no_environment(options: BatchOptions) -> str:
    return (
        f"{options.location}, @batch: no queue to send it to: no environment was found and "
        "the step names no queue. Pass --environment NAME (a stack built with "
        "batchwright_cdk; or set $BATCHWRIGHT_ENVIRONMENT, or the "
        "'batchwright:defaultEnvironment' context in cdk.json), or give @batch(queue=...)."
    )


def plan_step(
    step: str,
    decorators: Sequence[Any],
    environment: EnvironmentDescriptor | None,
    *,
    run_batch_locally: bool = False,
    reclaims_before_on_demand: int = DEFAULT_RECLAIMS_BEFORE_ON_DEMAND,
    local_variables: Collection[str] = (),
    parallel: bool = False,
    nodes: int | None = None,
) -> StepPlan:
    """The plan of one step (see :func:`make_plan`)."""
    policy = step_policy(step, decorators, run_batch_locally=run_batch_locally)
    notices = tuple(
        f"step '{step}' asks for the '{name}' backend, which is not available here; it "
        "runs locally."
        for name in wanted_but_missing(decorators)
    )
    batch = _decorator(decorators, "batch")
    if batch is None:
        return StepPlan(policy, reason="no @batch: runs on the local backend", notices=notices)
    options: BatchOptions = batch.options
    base = StepPlan(policy, options=options, notices=notices, parallel=parallel, nodes=nodes)
    if options.secrets and run_batch_locally:
        base = _secrets_run_locally(base, options, local_variables)
        if not base.ok:
            return base
    try:
        check_timeout(step, policy.batch_timeout_seconds, flow=options.flow)
    except BatchwrightError as error:
        return dataclasses.replace(base, verdict=str(error))
    if environment is None:
        # No queue to check against: every check that needs none still runs.
        problem = check_anywhere(options)
        if problem:
            return dataclasses.replace(base, verdict=problem)
        if options.queue is None and not run_batch_locally:
            return dataclasses.replace(base, verdict=_no_environment(options))
        return dataclasses.replace(
            base,
            queue=options.queue,
            reason=_unchecked(options, None, locally=run_batch_locally),
        )
    routed = route(
        options,
        environment,
        has_retry=policy.retries > 0,
        nodes=(nodes or 1) if parallel else None,
    )
    planned = dataclasses.replace(
        base,
        queue=routed.queue_id,
        queue_key=routed.queue.key if routed.queue else None,
        platform=routed.platform,
        instance_types=routed.instance_types,
        reason=routed.reason,
        verdict=routed.verdict,
    )
    if not routed.ok:
        return dataclasses.replace(
            planned, platform=None if routed.queue is None else routed.platform
        )
    if routed.queue is None:
        # A queue outside the environment: the live check reads its platform.
        problem = check_anywhere(options, environment)
        return dataclasses.replace(
            planned,
            platform=None,
            verdict=problem or OK,
            reason=_unchecked(options, environment, locally=run_batch_locally),
        )
    queue = routed.queue
    counterpart = (
        on_demand_counterpart(options, queue, environment) if reclaims_before_on_demand else None
    )
    on_demand = None
    if counterpart is not None:
        on_demand = environment_target(environment, counterpart.queue)
        planned = dataclasses.replace(planned, on_demand_queue_key=counterpart.queue.key)
    target = environment_target(environment, queue)
    if parallel and planned.instance_types:
        planned = dataclasses.replace(
            # 0 (capacity unknown) checks nothing rather than refusing every count.
            planned,
            max_nodes=most_nodes(queue, environment, planned.instance_types[0]) or None,
        )
        if not planned.policy.timeout_seconds:
            unbounded = (
                f"step '{step}' is a parallel step without @timeout: its main node waits "
                "for every other node, so a node lost without a trace keeps all its "
                "instances until the run's orchestrator stops the job (or forever, if the "
                "orchestrator is gone too). Add @timeout to bound it."
            )
            planned = dataclasses.replace(planned, warnings=(*planned.warnings, unbounded))
    return _targeted(planned, target, on_demand, reclaims_before_on_demand)


def make_plan(
    flow_name: str,
    decorators_by_step: Mapping[str, Sequence[Any]],
    environment: EnvironmentDescriptor | None,
    *,
    run_batch_locally: bool = False,
    reclaims_before_on_demand: int = DEFAULT_RECLAIMS_BEFORE_ON_DEMAND,
    local_variables: Collection[str] = (),
    parallel_steps: Mapping[str, int | None] | None = None,
) -> Plan:
    """Plans every step of a flow, in the order of ``decorators_by_step`` (graph order).

    ``decorators_by_step`` holds each step's checked decorators
    (:attr:`batchwright.definition.FlowDefinition.decorators`: each ``@batch`` decorator
    has run ``step_init``, so its ``options`` are checked). A step on a Spot queue moves
    to the on-demand queue of the same kind after ``reclaims_before_on_demand`` reclaims
    of one attempt (0: never). With ``run_batch_locally``, a step with ``secrets`` is
    refused unless each of its variables is among ``local_variables`` (the names set in
    the launching environment, which local tasks inherit). ``parallel_steps`` names the
    parallel steps and their node counts (``None`` when set at run time;
    :attr:`batchwright.definition.FlowDefinition.parallel_steps`): each goes to a queue
    that runs multi-node jobs, its nodes within the queue's max vCPUs. No I/O.
    """
    parallel = parallel_steps or {}
    steps = tuple(
        plan_step(
            step,
            decorators,
            environment,
            run_batch_locally=run_batch_locally,
            reclaims_before_on_demand=reclaims_before_on_demand,
            local_variables=local_variables,
            parallel=step in parallel,
            nodes=parallel.get(step),
        )
        for step, decorators in decorators_by_step.items()
    )
    return Plan(flow_name, steps, environment, run_batch_locally)


# --- the live check -------------------------------------------------------------------------


def _pages(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i : i + DESCRIBE_PAGE]) for i in range(0, len(items), DESCRIBE_PAGE)]


def _usable(record: Mapping[str, Any]) -> bool:
    return record.get("state") == "ENABLED" and record.get("status") == "VALID"


def _platform_of(ce: Mapping[str, Any]) -> Platform:
    kind = (ce.get("computeResources") or {}).get("type", "EC2")
    return kind if kind in PLATFORMS else "EC2"


def live_check(plan: Plan, batch_client: Any) -> Plan:
    """Checks the plan's queues against AWS: one ``DescribeJobQueues`` and one
    ``DescribeComputeEnvironments`` (per 100 names).

    Refuses a step whose queue does not exist, is not ENABLED and VALID, or has no ENABLED
    and VALID compute environment. A step sent to a queue outside the environment gets its
    platform from the queue's first usable compute environment, and then its job
    definition (so platform refusals surface here too).

    Raises:
        PlanError: AWS could not be asked (no credentials, no network, access denied).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    planned = [s for s in plan.steps if s.is_batch and s.ok and s.queue]
    queues = list(dict.fromkeys(s.queue for s in planned if s.queue))
    if not queues:
        return dataclasses.replace(plan, live_checked=True)
    try:
        described: list[dict[str, Any]] = []
        for page in _pages(queues):
            described += batch_client.describe_job_queues(jobQueues=page).get("jobQueues", [])
        ce_arns = list(
            dict.fromkeys(
                o["computeEnvironment"]
                for q in described
                for o in q.get("computeEnvironmentOrder", [])
            )
        )
        environments: dict[str, dict[str, Any]] = {}
        for page in _pages(ce_arns):
            for ce in batch_client.describe_compute_environments(computeEnvironments=page).get(
                "computeEnvironments", []
            ):
                environments[ce["computeEnvironmentArn"]] = ce
                environments[ce["computeEnvironmentName"]] = ce
    except (BotoCoreError, ClientError) as error:
        raise PlanError(
            f"flow '{plan.flow}': could not check the job queues {', '.join(queues)} in AWS "
            f"({type(error).__name__}: {error}). Check the AWS region, credentials and "
            "network (or AWS_ENDPOINT_URL for the local AWS), or pass --run-batch-locally "
            "to run the @batch steps on this machine."
        ) from error
    by_id: dict[str, dict[str, Any]] = {}
    for q in described:
        by_id[q["jobQueueArn"]] = q
        by_id[q["jobQueueName"]] = q
    steps = [_check_step(s, by_id, environments, plan) if s in planned else s for s in plan.steps]
    return dataclasses.replace(plan, steps=tuple(steps), live_checked=True)


def _check_step(
    step: StepPlan,
    queues: Mapping[str, Mapping[str, Any]],
    environments: Mapping[str, Mapping[str, Any]],
    plan: Plan,
) -> StepPlan:
    assert step.queue is not None and step.options is not None
    where = f"{step.options.location}, @batch"
    record = queues.get(step.queue)
    if record is None:
        if step.queue_key is not None and is_placeholder(step.queue):
            # Read from cdk.out before deployment: the ARN is a placeholder, so say the key.
            missing = (
                f"queue '{step.queue_key}' does not exist in this account and region: it is "
                "not deployed yet (its ARN was read from cdk.out)"
            )
        elif step.queue_key is not None:
            missing = (
                f"queue '{step.queue_key}' ({step.queue}) does not exist in this account and region"
            )
        else:
            missing = f"queue {step.queue!r} does not exist in this account and region"
        return dataclasses.replace(
            step,
            verdict=f"{where}: {missing}. Deploy the environment (or check --environment / "
            "the region), or name an existing queue with @batch(queue=...).",
        )
    name = record.get("jobQueueName", step.queue)
    if not _usable(record):
        reason = record.get("statusReason")
        return dataclasses.replace(
            step,
            verdict=f"{where}: queue '{name}' is {record.get('state')}/{record.get('status')}"
            + (f" ({reason})" if reason else "")
            + "; jobs sent there would never start. Enable it (aws batch update-job-queue "
            f"--job-queue {name} --state ENABLED) or fix it, or send the step elsewhere with "
            "@batch(queue=...).",
        )
    order = sorted(record.get("computeEnvironmentOrder", []), key=lambda o: o.get("order", 0))
    ces = [environments.get(o["computeEnvironment"]) for o in order]
    usable = [ce for ce in ces if ce is not None and _usable(ce)]
    if not usable:
        states = ", ".join(
            f"{ce.get('computeEnvironmentName')} {ce.get('state')}/{ce.get('status')}"
            for ce in ces
            if ce is not None
        )
        return dataclasses.replace(
            step,
            verdict=f"{where}: queue '{name}' has no ENABLED and VALID compute environment "
            f"({states or 'none found'}); jobs sent there would wait in RUNNABLE forever. "
            "Enable or repair a compute environment of the queue, or send the step elsewhere "
            "with @batch(queue=...).",
        )
    if step.target is not None:
        return step
    # A queue outside the environment: its platform comes from its compute environment.
    platform = _platform_of(usable[0])
    completed = dataclasses.replace(step, platform=platform)
    return _targeted(completed, queue_target(plan.environment, step.queue, platform))
