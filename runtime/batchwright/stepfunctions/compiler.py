"""A flow compiled to an Amazon States Language document: one state machine per flow.

Every step is an AWS Batch job, submitted through the ``batch:submitJob.sync``
integration with the job definition, queue and overrides the plan chose for ``run`` (the
job spec, contract 2, builds them; here they are only put in Step Functions' PascalCase).
The command is the task entrypoint's deployed form (contract 3): the same in every
execution, the run id being the execution's name.

The flow's shapes:

* a branch is a ``Parallel`` state, one branch per path, joined by the join's job;
* a foreach is one array job per step of its body: the split publishes the array size in
  the datastore and an ``aws-sdk:s3:getObject`` task reads it back into ``ArrayProperties``
  (see :mod:`batchwright.stepfunctions.layout`);
* ``@retry`` is the task state's ``Retry`` on ``States.TaskFailed``; infrastructure
  failures stay with the job definition's own retry strategy, as for ``run``;
* ``@timeout`` is the job definition's attempt duration;
* ``@catch`` is a ``Catch`` that runs the step's fallback attempt (the one that records
  ``FailureHandledByCatch``) and goes on; any other failure ends the execution in a
  ``Fail`` state named after the step.

The execution's input is ``{"Parameters": {"name": "value"}}``, values as they are typed
on the command line; a missing ``Parameters`` means every default.

What a state machine cannot run is refused here, before anything is created
(:class:`CompileError`, exit code 2).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchwright.batch.definition import JobDefinitionRequest
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.options import TAG_PREFIX
from batchwright.batch.submission import TaskInvocation, sanitize_job_name
from batchwright.entrypoint import (
    EXECUTION_VARIABLE,
    RETRY_COUNT_VARIABLE,
    deployed_arguments,
)
from batchwright.entrypoint.bootstrap import container_command
from batchwright.errors import BatchwrightError, UserInputError
from batchwright.stepfunctions import layout
from batchwright.stepfunctions.deployed import CONFIGS_VARIABLE, TAGS_VARIABLE

if TYPE_CHECKING:
    from batchwright.definition import FlowDefinition
    from batchwright.graph import Node
    from batchwright.plan import Plan

#: The Step Functions resource of a Batch job it waits for.
SUBMIT_JOB_SYNC = "arn:aws:states:::batch:submitJob.sync"
#: The Step Functions resource that reads an S3 object (the array size of a foreach).
GET_OBJECT = "arn:aws:states:::aws-sdk:s3:getObject"
#: ... and the one that writes one (the execution's parameters, a step's failure).
PUT_OBJECT = "arn:aws:states:::aws-sdk:s3:putObject"
#: Errors of the Batch API itself (SubmitJob throttled, a server error), as the Batch
#: integration names them: retried with backoff and jitter, as every batchwright call.
BATCH_API_RETRY: Mapping[str, Any] = {
    "ErrorEquals": [
        "Batch.AWSBatchException",
        "Batch.ClientException",
        "Batch.ServerException",
        "Batch.TooManyRequestsException",
    ],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}
#: The largest execution input Step Functions takes (bytes).
MAX_INPUT_BYTES = 256 * 1024
#: The SubmitJob parameters Step Functions' Batch integration passes on.
SUPPORTED_SUBMIT_PARAMETERS = frozenset(
    {
        "ArrayProperties",
        "ContainerOverrides",
        "DependsOn",
        "JobDefinition",
        "JobName",
        "JobQueue",
        "Parameters",
        "RetryStrategy",
        "Timeout",
        "Tags",
    }
)
#: The state that stores the execution's Parameters for ``start``.
STORE_PARAMETERS = "Parameters"
#: Where a failed state's error goes (what the failure record stores).
ERROR_PATH = "$.batchwright.error"
#: Where in the state's data the foreach sizes read back are kept.
FOREACH_PATH = "$.batchwright.foreach"
#: The placeholders the job spec is built with, replaced by the execution's values.
_RUN_PLACEHOLDER = "RUN"


class CompileError(UserInputError):
    """The flow cannot run as a state machine; the message lists every reason."""


@dataclass(frozen=True)
class CodePackageLocation:
    """Where the deployed code package is (``s3://``) and its SHA-256."""

    url: str
    sha256: str


@dataclass(frozen=True)
class CompiledFlow:
    """A flow as a state machine: its ASL document and the job definitions it names."""

    flow: str
    definition: Mapping[str, Any] = field(hash=False)
    #: Every job definition a state submits to, by name.
    job_definitions: Mapping[str, JobDefinitionRequest] = field(hash=False)
    #: The queues the states submit to.
    queues: tuple[str, ...]
    #: The datastore root the tasks use (``s3://bucket/prefix``).
    datastore_root: str

    def to_json(self) -> str:
        """The ASL document as Step Functions takes it."""
        return json.dumps(self.definition, indent=2, sort_keys=False)

    @property
    def bucket(self) -> str:
        """The datastore's bucket."""
        return _split_s3(self.datastore_root)[0]


def _split_s3(root: str) -> tuple[str, str]:
    bucket, _, prefix = root[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def _format_literal(text: str) -> str:
    """``text`` as the literal part of a ``States.Format`` template."""
    for char in "\\{}'":
        text = text.replace(char, "\\" + char)
    return text


def _one_line(command: Sequence[str]) -> tuple[str, ...]:
    """The command with the program of ``python3 -c`` on one line (``exec`` of its source
    as a literal): the same program, but a document whose strings hold no line breaks,
    which every ASL tool reads (asl-validator 4's schema refuses multi-line strings)."""
    args = list(command)
    for i in range(1, len(args)):
        if args[i - 1] == "-c" and "\n" in args[i]:
            args[i] = f"exec({args[i]!r})"
    return tuple(args)


def _pascal(value: Any) -> Any:
    """A SubmitJob body (without its tags) in Step Functions' PascalCase."""
    if isinstance(value, Mapping):
        return {key[:1].upper() + key[1:]: _pascal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_pascal(item) for item in value]
    return value


def deployment_environment(
    user: str, tags: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every deployed job's environment, as ``run`` gives its jobs: the AWS endpoint and
    region variables of ``environ`` (default: this process's) that jobs should see (see
    :func:`~batchwright.batch.jobenv.forwarded_aws_environment`), who deployed the flow
    (the runs' namespace) and the runs' tags."""
    import os

    from batchwright.batch.jobenv import forwarded_aws_environment
    from batchwright.identity import USER_VARIABLE

    return {
        **forwarded_aws_environment(os.environ if environ is None else environ),
        # Output reaches CloudWatch as it is printed, not when the buffer fills.
        "PYTHONUNBUFFERED": "1",
        USER_VARIABLE: user,
        TAGS_VARIABLE: json.dumps(sorted(set(tags))),
    }


def compile_flow(
    definition: FlowDefinition,
    plan: Plan,
    *,
    datastore_root: str,
    code_package: CodePackageLocation,
    environment: Mapping[str, str],
    flow_file: str,
    definition_reference: Callable[[JobDefinitionRequest], str] | None = None,
    queue_reference: Callable[[str], str] | None = None,
    scheduled: bool = False,
) -> CompiledFlow:
    """The state machine of a planned flow.

    ``environment`` is every job's environment (the AWS endpoint and region where an
    emulator needs them, who deployed it, the run's tags). ``flow_file`` is the flow's
    file name inside the code package. ``definition_reference`` and ``queue_reference``
    give what a state names a job definition and a queue by (default: the definition's
    name, the queue as planned); a CDK construct passes tokens. ``scheduled``: a schedule
    starts the state machine with no Parameters, so every parameter needs a default.

    Raises:
        CompileError: every reason the flow cannot be a state machine, at once.
    """
    compiler = _Compiler(
        definition,
        plan,
        datastore_root,
        code_package,
        environment,
        flow_file,
        definition_reference or (lambda request: request.name),
        queue_reference or (lambda queue: queue),
        scheduled,
    )
    return compiler.compile()


class _Compiler:
    def __init__(
        self,
        definition: FlowDefinition,
        plan: Plan,
        datastore_root: str,
        code_package: CodePackageLocation,
        environment: Mapping[str, str],
        flow_file: str,
        definition_reference: Callable[[JobDefinitionRequest], str],
        queue_reference: Callable[[str], str],
        scheduled: bool = False,
    ) -> None:
        self.definition = definition
        self.scheduled = scheduled
        self.graph = definition.graph
        self.flow = definition.name
        self.plan = plan
        self.root = datastore_root
        self.package = code_package
        self.environment = dict(environment)
        self.flow_file = flow_file
        self.definition_reference = definition_reference
        self.queue_reference = queue_reference
        self.problems: list[str] = []
        #: IncludeFile defaults' content by parameter name (see :meth:`_included_files`).
        self.included: dict[str, str] = {}
        self.job_definitions: dict[str, JobDefinitionRequest] = {}
        self.queues: list[str] = []

    # -- refusals ----------------------------------------------------------------------------

    def _check(self) -> None:
        flow = self.flow
        if not self.root.startswith("s3://") or not _split_s3(self.root)[0]:
            self.problems.append(
                f"the datastore root {self.root!r} is not in S3: a deployed flow's tasks "
                "share their data through S3. Deploy with an environment "
                "(--environment NAME) or --datastore-root s3://bucket/prefix."
            )
        elif any(char in _split_s3(self.root)[1] for char in "\\{}'"):
            self.problems.append(
                f"the datastore prefix of {self.root!r} holds one of \\ {{ }} ': Step "
                "Functions cannot build its keys. Use a prefix without them."
            )
        self.problems.extend(self.plan.refusals)
        for node in self.graph.nodes.values():
            where = f"flow {flow}, step '{node.name}'"
            if node.is_switch:
                self.problems.append(
                    f"{where}: a switch (self.next({{...}}, condition=...)) cannot be deployed "
                    "yet. Run the flow with `run`, or replace the switch with a branch."
                )
            if node.parallel_step or node.parallel_foreach:
                self.problems.append(
                    f"{where}: a parallel step (num_parallel / @parallel) cannot be deployed "
                    "yet. Run it with `run`."
                )
            if node.is_foreach and layout.enclosing_foreach(self.graph, node.name):
                self.problems.append(
                    f"{where}: a foreach inside a foreach cannot be deployed (each foreach "
                    "is one array job). Flatten the items into one foreach."
                )
            step_plan = self.plan.step(node.name)
            if step_plan.ok and step_plan.policy.batch is None:
                self.problems.append(
                    f"{where}: runs locally, but every step of a deployed flow runs on "
                    "AWS Batch. Add @batch to it, or let the deployment add a default one (what "
                    "it does unless told not to: --no-implicit-batch, promote_steps=False)."
                )
        if self.graph.loop_edges:
            self.problems.append(
                f"flow {flow}: it loops back (a switch case to an earlier step); a "
                "deployed flow cannot loop yet."
            )
        self._check_parameters()

    def _check_parameters(self) -> None:
        from batchwright.parameters import flow_parameters

        if self.scheduled:
            for parameter in flow_parameters(self.definition.flow_class).values():
                if parameter.required and parameter.default is None:
                    self.problems.append(
                        f"flow {self.flow}, parameter '{parameter.name}': it is required and "
                        "has no default, but @schedule starts runs with no Parameters, so "
                        "every scheduled run would fail. Give it a default, or drop "
                        "@schedule and start runs with step-functions trigger."
                    )
        self.included = self._included_files()
        size = len(json.dumps({"Parameters": self.included}).encode())
        if size > MAX_INPUT_BYTES:
            names = ", ".join(sorted(self.included))
            self.problems.append(
                f"flow {self.flow}, IncludeFile {names}: the defaults' content makes "
                f"{size:,} bytes of input; a deployed flow carries an IncludeFile's content "
                f"in the execution's input, which Step Functions limits to "
                f"{MAX_INPUT_BYTES:,} bytes. Keep the file in S3 and pass its URL as a "
                "Parameter instead."
            )

    def _included_files(self) -> dict[str, str]:
        """The content of every IncludeFile default, by parameter name (base64 when the
        parameter takes bytes): read now, as ``run`` reads them when it starts."""
        from batchwright.parameters import IncludeFile, flow_parameters

        included: dict[str, str] = {}
        for parameter in flow_parameters(self.definition.flow_class).values():
            if not isinstance(parameter, IncludeFile) or parameter.default is None:
                continue
            try:
                value = parameter.resolve(None, self.flow, {}, self.definition.configs.namespace())
            except BatchwrightError as error:
                self.problems.append(str(error))
                continue
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode("ascii")
            included[parameter.name] = value
        return included

    def _input_states(self) -> dict[str, Any]:
        """The states before ``start``: an execution without Parameters gets every
        default, IncludeFile defaults not given are filled in from the deployment, and
        the Parameters are stored where ``start`` reads them."""
        first = "Files" if self.included else STORE_PARAMETERS
        states: dict[str, Any] = {
            "Input": {
                "Type": "Choice",
                "Comment": "An execution without Parameters runs with every default.",
                "Choices": [{"Variable": "$.Parameters", "IsPresent": True, "Next": first}],
                "Default": "Defaults",
            },
            "Defaults": {
                "Type": "Pass",
                "Result": {},
                "ResultPath": "$.Parameters",
                "Next": first,
            },
        }
        if self.included:
            states["Files"] = {
                "Type": "Pass",
                "Comment": "The content of the IncludeFile defaults, read when deployed.",
                "Result": self.included,
                "ResultPath": "$.batchwright.files",
                "Next": "Arguments",
            }
            states["Arguments"] = {
                "Type": "Pass",
                "Comment": "The Parameters given, over the IncludeFile defaults.",
                "Parameters": {
                    "Parameters.$": "States.JsonMerge($.batchwright.files, $.Parameters, false)"
                },
                "Next": STORE_PARAMETERS,
            }
        states[STORE_PARAMETERS] = self._parameters_state()
        return states

    # -- the document ------------------------------------------------------------------------

    def compile(self) -> CompiledFlow:
        self._check()
        if self.problems:
            raise CompileError(self._refusal())
        states = self._input_states()
        try:
            _, ends = self._sequence("start", None, None, states)
            for end in ends:
                end["End"] = True
        except BatchwrightError as error:
            self.problems.append(str(error))
        if self.problems:
            raise CompileError(self._refusal())
        document = {
            "Comment": f"batchwright flow {self.flow} (deployed from {self.flow_file})",
            "StartAt": "Input",
            "States": states,
        }
        return CompiledFlow(
            self.flow, document, dict(self.job_definitions), tuple(self.queues), self.root
        )

    def _refusal(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in dict.fromkeys(self.problems))
        return f"flow {self.flow} cannot be deployed as a state machine:\n{lines}"

    def _sequence(
        self, step: str, stop: str | None, foreach: str | None, states: dict[str, Any]
    ) -> tuple[str, list[dict[str, Any]]]:
        """States for ``step`` and what follows it up to ``stop`` (the join that closes
        the split this sequence is a branch of), into ``states``. Returns the first
        state's name and the states that go on to whatever comes after."""
        first: str | None = None
        open_ends: list[dict[str, Any]] = []

        def link(name: str, ends: list[dict[str, Any]]) -> None:
            nonlocal first, open_ends
            for end in open_ends:
                end["Next"] = name
            first = first or name
            open_ends = ends

        current: str | None = step
        while current is not None and current != stop:
            node = self.graph[current]
            link(*self._task_states(node, foreach, states))
            if node.is_foreach:
                size = f"{node.name}.size"
                states[size] = self._size_state(node)
                link(size, [states[size]])
                # The body: one array job per step, item i of each reading item i.
                link(*self._sequence(node.out_funcs[0], node.matching_join, node.name, states))
            elif node.is_split:
                branches = []
                for child in node.out_funcs:
                    branch: dict[str, Any] = {}
                    start, ends = self._sequence(child, node.matching_join, foreach, branch)
                    for end in ends:
                        end["End"] = True
                    branches.append({"StartAt": start, "States": branch})
                parallel = f"{node.name}.split"
                states[parallel] = {"Type": "Parallel", "Branches": branches, "ResultPath": None}
                link(parallel, [states[parallel]])
            if node.is_split:
                current = node.matching_join
            else:
                current = node.out_funcs[0] if node.out_funcs else None
        assert first is not None
        return first, open_ends

    def _s3_task(self, resource: str, key: str, comment: str, **fields: Any) -> dict[str, Any]:
        """A task on the datastore's object ``key`` (relative to the root, with ``\0``
        where the run id goes), retried on S3's transient errors."""
        bucket, prefix = _split_s3(self.root)
        key = f"{prefix}/{key}" if prefix else key
        template = "{}".join(_format_literal(part) for part in key.split("\0"))
        parameters = {"Bucket": bucket, "Key.$": f"States.Format('{template}', $$.Execution.Name)"}
        return {
            "Type": "Task",
            "Comment": comment,
            "Resource": resource,
            "Parameters": {**parameters, **fields.pop("body", {})},
            **fields,
            "Retry": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 5,
                    "BackoffRate": 2.0,
                    "JitterStrategy": "FULL",
                }
            ],
        }

    def _size_state(self, node: Node) -> dict[str, Any]:
        return self._s3_task(
            GET_OBJECT,
            layout.array_size_key(self.flow, "\0", node.name),
            f"How many items foreach step '{node.name}' fans out over.",
            ResultSelector={"size.$": "States.StringToJson($.Body)"},
            ResultPath=f"{FOREACH_PATH}.{node.name}",
        )

    def _parameters_state(self) -> dict[str, Any]:
        """Stores the execution's Parameters where ``start`` reads them: they may be far
        larger than a job's 8 KiB of overrides (IncludeFile content)."""
        state = self._s3_task(
            PUT_OBJECT,
            layout.deployment_key(self.flow, "\0", layout.PARAMETERS_OBJECT),
            "The execution's Parameters, for the start step.",
            body={"Body.$": "States.JsonToString($.Parameters)"},
            ResultPath=None,
        )
        state["Next"] = "start"
        return state

    def _failure_states(self, step: str, states: dict[str, Any]) -> str:
        """Records that ``step`` failed (the run's record reads it, also when the job died
        without a word), then fails the execution naming the step; returns the first."""
        record, failed = f"{step}.record", f"{step}.failed"
        states[record] = self._s3_task(
            PUT_OBJECT,
            layout.deployment_key(self.flow, "\0", layout.failure_object(step)),
            f"Records in the run that step '{step}' failed.",
            body={"Body.$": "States.JsonToString($.batchwright.error)"},
            ResultPath=None,
        )
        # Recording is best effort: the execution fails with the step's error either way.
        states[record]["Catch"] = [
            {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": failed}
        ]
        states[record]["Next"] = failed
        states[failed] = {
            "Type": "Fail",
            "Error": f"batchwright.StepFailed.{step}",
            "Cause": (
                f"step '{step}' of flow {self.flow} failed; its logs: python "
                f"{self.flow_file} logs <run id>/{step}"
            ),
        }
        return record

    def _task_states(
        self, node: Node, foreach: str | None, states: dict[str, Any]
    ) -> tuple[str, list[dict[str, Any]]]:
        """The step's task state (and its @catch fallback and its Fail state); returns the
        task state's name and the states that go on to the next step."""
        step_plan = self.plan.step(node.name)
        policy = step_plan.policy
        task = states[node.name] = self._task(node, foreach, retry_count=None)
        failed = self._failure_states(node.name, states)
        # Batch's own API errors (throttling, a server error) are not the step's: retried
        # with backoff and jitter, before and apart from @retry.
        task["Retry"] = [dict(BATCH_API_RETRY)]
        if policy.retries:
            task["Retry"] += [
                {
                    "ErrorEquals": ["States.TaskFailed"],
                    "IntervalSeconds": max(1, int(policy.retry_delay_seconds)),
                    "MaxAttempts": policy.retries,
                    "BackoffRate": 1.0,
                }
            ]
        ends = [task]
        task["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": ERROR_PATH, "Next": failed}]
        if policy.catch:
            fallback = f"{node.name}.caught"
            states[fallback] = self._task(node, foreach, retry_count=policy.retries + 1)
            states[fallback]["Comment"] = (
                f"@catch: the last attempt of '{node.name}' died without raising; this "
                "attempt records FailureHandledByCatch and the flow goes on."
            )
            states[fallback]["Retry"] = [dict(BATCH_API_RETRY)]
            states[fallback]["Catch"] = list(task["Catch"])
            ends.append(states[fallback])
            # Only the step's own failure (its job failed): a job Batch never took did not
            # run, so no fallback may record that it did.
            task["Catch"].insert(
                0,
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": ERROR_PATH, "Next": fallback},
            )
        return node.name, ends

    def _task(self, node: Node, foreach: str | None, retry_count: int | None) -> dict[str, Any]:
        step_plan = self.plan.step(node.name)
        policy = step_plan.policy
        job = policy.batch
        assert job is not None
        array = foreach is not None
        arguments = deployed_arguments(
            flow_file=self.flow_file,
            flow=self.flow,
            step=node.name,
            datastore_root=self.root,
            max_retries=policy.retries,
            with_options=self.definition.with_options,
            array=array,
        )
        environment = dict(self.environment)
        if node.name == "start":
            try:
                environment[CONFIGS_VARIABLE] = self.definition.configs.to_json()
            except TypeError as error:
                raise CompileError(
                    f"flow {self.flow}: its configs cannot be carried by a state machine "
                    f"({error}); deploy with configs JSON can hold."
                ) from None
        invocation = TaskInvocation(
            flow=self.flow,
            run_id=_RUN_PLACEHOLDER,
            step=node.name,
            task_id=layout.task_id(self.graph, node.name, 0 if array else None),
            command=_one_line(container_command(self.package.url, self.package.sha256, arguments)),
            environment=environment,
            array_size=layout.MIN_ARRAY_SIZE if array else None,
            timeout_seconds=policy.batch_timeout_seconds,
        )
        spec = build_job_spec(job.options, job.target, invocation)
        self.job_definitions[spec.definition.name] = spec.definition
        if job.target.queue not in self.queues:
            self.queues.append(job.target.queue)
        body = spec.submit.kwargs()
        tags: dict[str, Any] = {
            k: v for k, v in body.pop("tags", {}).items() if not k.startswith(TAG_PREFIX)
        }
        tags[TAG_PREFIX + "flow"] = self.flow
        tags[TAG_PREFIX + "step"] = node.name
        # `jobs list` shows flow/run/step/task: an array job's children are its items.
        tags[TAG_PREFIX + "task"] = "items" if array else invocation.task_id
        tags[f"{TAG_PREFIX}run.$"] = "$$.Execution.Name"
        body.pop("propagateTags", None)  # the definition propagates them
        parameters: dict[str, Any] = _pascal(body)
        parameters["JobName"] = sanitize_job_name(self.flow, node.name)
        parameters["JobQueue"] = self.queue_reference(job.target.queue)
        parameters["JobDefinition"] = self.definition_reference(spec.definition)
        parameters["Tags"] = tags
        overrides = parameters["ContainerOverrides"]
        overrides["Environment"] = [
            *overrides.get("Environment", []),
            {"Name": EXECUTION_VARIABLE, "Value.$": "$$.Execution.Name"},
            (
                {"Name": RETRY_COUNT_VARIABLE, "Value": str(retry_count)}
                if retry_count is not None
                else {
                    "Name": RETRY_COUNT_VARIABLE,
                    "Value.$": "States.Format('{}', $$.State.RetryCount)",
                }
            ),
        ]
        if array:
            assert foreach is not None
            parameters["ArrayProperties"] = {"Size.$": f"{FOREACH_PATH}.{foreach}.size"}
        unsupported = sorted(set(parameters) - SUPPORTED_SUBMIT_PARAMETERS)
        if unsupported:
            raise CompileError(
                f"flow {self.flow}, step '{node.name}': its job needs "
                f"{', '.join(unsupported)}, which Step Functions' Batch integration does not "
                "pass on. Run the step with `run`."
            )
        return {
            "Type": "Task",
            "Comment": f"step '{node.name}'"
            + (f", one job per item of '{foreach}'" if array else ""),
            "Resource": SUBMIT_JOB_SYNC,
            "Parameters": parameters,
            "ResultPath": None,
        }
