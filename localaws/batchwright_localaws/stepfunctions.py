"""Step Functions' service integrations on moto, with the field names real AWS uses.

A Task state's ``Parameters`` name an API's fields in PascalCase (``JobName``,
``ContainerOverrides: {Environment: [{Name, Value}]}``), whatever the API's own case, and
its result comes back PascalCased the same way (``JobId``; for
``arn:aws:states:::batch:submitJob.sync`` the DescribeJobs record of the finished job,
``{"JobId", "JobName", "Status", "Container": {...}, "ArrayProperties": {...}, ...}``).
moto 5.2's Step Functions interpreter has the hooks for both conversions
(``StateTaskService._normalise_parameters`` / ``_normalise_response``) but leaves them
empty, so a Batch task that is correct for AWS fails there with ``States.Runtime
'JobName'``, its ``.sync`` resolver cannot find ``JobId``, and an ``aws-sdk:s3:getObject``
result carries a stream object instead of the text of the ``Body``.

The conversions here walk botocore's model of the operation (the shapes of its input or
output), recursively through structures, lists and maps:

* :func:`to_api_names` turns a member written ``JobName`` into the API's ``jobName``;
  a member already in the API's case passes unchanged (so it is idempotent, and moto's own
  ``{"name": "MANAGED_BY_AWS", ...}`` environment entry is kept). A map's keys are user
  data (Tags, Batch ``Parameters``) and stay as written. A key the model does not know
  stays too, for the service to refuse.
* :func:`to_sfn_names` turns the API's member names into PascalCase (``jobId`` ->
  ``JobId``), leaves map keys alone and reads a streaming body into text, as Step
  Functions does.

:func:`install` puts them into moto's interpreter for every integration that defers to
its base class (Batch, ECS, Step Functions, SQS, SNS, DynamoDB, Lambda, EventBridge, Glue
and ``aws-sdk:*``; API Gateway keeps its own); the service and action of the task's
resource choose the botocore operation. Nested dictionaries are rewritten in place,
which moto's Batch ``.sync`` resolver relies on: it normalises the DescribeJobs response
and then returns the job record it holds from inside it. :func:`install` also mends three
things a compiled flow meets: a retried ``.sync`` task gets a fresh task token (moto's
retry reused the spent one and timed out at once), a state machine can run more than
once, and aws-sdk S3 errors are named ``S3.*``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

#: Step Functions' names of services whose botocore name differs.
BOTO_SERVICE_NAMES = {"sfn": "stepfunctions", "states": "stepfunctions"}


def sfn_name(member: str) -> str:
    """The name Step Functions gives an API member: its first letter upper-cased."""
    return member[:1].upper() + member[1:]


@functools.cache
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def _operation_names(service: str) -> dict[str, str]:
    from botocore import xform_name

    model = _session().get_service_model(service)
    names: dict[str, str] = {}
    for name in model.operation_names:
        names[xform_name(name)] = name
        names[name.lower()] = name
    return names


@functools.cache
def operation_model(service: str, action: str) -> OperationModel | None:
    """botocore's model of ``action`` of ``service``, as a Task resource names them
    (``batch``/``submitJob``, ``s3``/``get_object``, ``states``/``startExecution``), or
    None when botocore knows no such operation."""
    from botocore import xform_name
    from botocore.exceptions import UnknownServiceError

    service = BOTO_SERVICE_NAMES.get(service, service)
    try:
        names = _operation_names(service)
    except UnknownServiceError:
        return None
    name = names.get(xform_name(action)) or names.get(action.replace("_", "").lower())
    if name is None:
        return None
    return _session().get_service_model(service).operation_model(name)  # type: ignore[no-any-return]


def _member(key: str, members: Mapping[str, Shape]) -> tuple[str, Shape] | None:
    """The member ``key`` names: exactly, or in Step Functions' PascalCase."""
    if key in members:
        return key, members[key]
    for name, shape in members.items():
        if sfn_name(name) == key:
            return name, shape
    return None


def _convert(value: Any, shape: Shape | None, to_api: bool, in_place: bool) -> Any:
    if shape is None:
        return value
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return value
        converted: dict[str, Any] = {}
        for key, item in value.items():
            member = _member(key, shape.members)
            if member is None:  # unknown to the model: left for the service to judge
                converted[key] = item
                continue
            name, member_shape = member
            converted[name if to_api else sfn_name(name)] = _convert(
                item, member_shape, to_api, in_place
            )
        if not in_place:
            return converted
        value.clear()
        value.update(converted)
        return value
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return value
        items = [_convert(item, shape.member, to_api, in_place) for item in value]
        if not in_place:
            return items
        value[:] = items
        return value
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return value
        entries = {
            key: _convert(item, shape.value, to_api, in_place) for key, item in value.items()
        }
        if not in_place:
            return entries
        value.clear()
        value.update(entries)
        return value
    if not to_api and hasattr(value, "read") and callable(value.read):
        body = value.read()  # a streaming body: Step Functions returns its text
        return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return value


def to_api_names(value: Any, shape: Shape | None) -> Any:
    """``value`` (a Task's ``Parameters``, or a part of them of ``shape``) with every
    member named as the API names it: ``JobName`` -> ``jobName``. Names already in the
    API's case, map keys and keys the model does not know are kept. Returns a new value."""
    return _convert(value, shape, to_api=True, in_place=False)


def to_sfn_names(value: Any, shape: Shape | None) -> Any:
    """``value`` (an API response, or a part of it of ``shape``) with every member named
    as Step Functions returns it: ``jobId`` -> ``JobId``; map keys and unknown keys kept,
    a streaming body read into text. Returns a new value."""
    return _convert(value, shape, to_api=False, in_place=False)


def api_parameters(service: str, action: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A Task state's ``parameters`` for ``service``'s ``action`` with the API's member
    names (unchanged when botocore does not know the operation)."""
    operation = operation_model(service, action)
    shape = None if operation is None else operation.input_shape
    return dict(to_api_names(dict(parameters), shape))


def sfn_result(service: str, action: str, response: Mapping[str, Any]) -> dict[str, Any]:
    """The response of ``service``'s ``action`` as a Task state's result: PascalCase
    member names (unchanged when botocore does not know the operation)."""
    operation = operation_model(service, action)
    shape = None if operation is None else operation.output_shape
    return dict(to_sfn_names(dict(response), shape))


def _shared(self: Any, memo: dict[int, Any]) -> Any:
    return self


def install() -> None:
    """Fills moto's empty ``StateTaskService._normalise_parameters`` and
    ``_normalise_response`` with these conversions (in place, as moto's callers expect).
    Idempotent."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )
    from moto.stepfunctions.parser.backend import execution as execution_module

    service: Any = state_task_service.StateTaskService  # patched in place
    if getattr(service._normalise_parameters, "_batchwright", False):
        return

    def _operation(task: Any, boto_service_name: str | None, action: str | None) -> Any:
        return operation_model(
            task._get_boto_service_name(boto_service_name),
            task._get_boto_service_action(action),
        )

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        operation = _operation(self, boto_service_name, service_action_name)
        if operation is not None and operation.input_shape is not None:
            _convert(parameters, operation.input_shape, to_api=True, in_place=True)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        operation = _operation(self, boto_service_name, service_action_name)
        if operation is not None and operation.output_shape is not None:
            _convert(response, operation.output_shape, to_api=False, in_place=True)

    # moto deep-copies the state machine to start an execution, and with it the
    # executions it already ran, whose workers hold locks: the second execution of a state
    # machine failed with "cannot pickle '_thread.RLock' object". An execution is a
    # record, not part of the definition: the copy shares it.
    execution: Any = execution_module.Execution
    execution.__deepcopy__ = _shared

    # A retried ``.sync`` or ``.waitForTaskToken`` task kept the task token of its first
    # attempt, whose endpoint that attempt had closed: the retry timed out at once
    # (``States.Timeout``) instead of waiting for its job. Each attempt gets a token of its
    # own, as on AWS.
    waiting: Any = callback.StateTaskServiceCallback
    eval_execution = waiting._eval_execution

    def eval_execution_with_fresh_token(self: Any, env: Any) -> None:
        if (
            self._is_integration_pattern()
            and ResourceCondition.WaitForTaskToken in self._supported_integration_patterns
        ):
            task = env.states.context_object.context_object_data.get("Task") or {}
            endpoint = env.callback_pool_manager.get(task.get("Token"))
            if endpoint is not None and endpoint._notify_event.is_set():
                env.callback_pool_manager.add(env.states.context_object.update_task_token())
        eval_execution(self, env)

    waiting._eval_execution = eval_execution_with_fresh_token

    # An aws-sdk error is named after the service as Step Functions spells it:
    # "S3.NoSuchKeyException" (moto knows only DynamoDb and Sfn, and says "s3.").
    aws_sdk._SERVICE_ERROR_NAMES.setdefault("s3", "S3")

    normalise_parameters._batchwright = True  # type: ignore[attr-defined]
    normalise_response._batchwright = True  # type: ignore[attr-defined]
    service._normalise_parameters = normalise_parameters
    service._normalise_response = normalise_response
