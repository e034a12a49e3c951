"""The compiled state machine, checked from both sides: the ASL document against the
maintained ``asl-validator``, and the Batch request inside every task state against
botocore's SubmitJob model (as contract 2's requests are), once Step Functions' PascalCase
is put back in the API's names. Then the shapes the flow's graph and decorators become,
and the compile-time refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator
from tests.environment.descriptors import compute_environment, environment, queue

from batchwright import FlowSpec, Parameter, batch, catch, retry, step
from batchwright.definition import import_flow_file, load_definition
from batchwright.entrypoint import RETRY_COUNT_VARIABLE
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.plan import make_plan
from batchwright.stepfunctions.compiler import (
    GET_OBJECT,
    PUT_OBJECT,
    SUBMIT_JOB_SYNC,
    CodePackageLocation,
    CompiledFlow,
    CompileError,
    compile_flow,
    deployment_environment,
)

from .asl import asl_problems

FLOWS = Path(__file__).resolve().parents[1] / "stepfunctions" / "flows"
PACKAGE = CodePackageLocation("s3://bucket/bw/code/package.tar.gz", "ab" * 32)
ENVIRONMENT = environment(
    queue("cpu", "EC2", compute_environment("cpu", "EC2", types=("m5.2xlarge",)))
)


def compiled(
    flow_class: type,
    *,
    with_options: tuple[str, ...] = (),
    root: str = "s3://bucket/bw",
    env: EnvironmentDescriptor = ENVIRONMENT,
) -> CompiledFlow:
    definition = load_definition(flow_class, with_options)
    plan = make_plan(
        flow_class.__name__, definition.decorators, env, parallel_steps=definition.parallel_steps
    )
    return compile_flow(
        definition,
        plan,
        datastore_root=root,
        code_package=PACKAGE,
        environment=deployment_environment("deployer", ("nightly",), environ={}),
        flow_file="flow.py",
    )


def _flow(file: str, name: str) -> type:
    flow_class: type = getattr(import_flow_file(str(FLOWS / file)), name)
    return flow_class


def production() -> CompiledFlow:
    return compiled(_flow("production_flow.py", "ProductionFlow"))


def states(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, those in branches included."""
    for name, state in document["States"].items():
        yield name, state
        for branch in state.get("Branches", ()):
            yield from states(branch)


# -- both sides of the contract --------------------------------------------------------------


def test_the_document_is_valid_amazon_states_language() -> None:
    assert asl_problems(production().definition) == []


def _api_names(value: Any, shape: Shape, path: str) -> Any:
    """Step Functions' PascalCase parameters as the API's member names; a dynamic value
    (``Key.$``) becomes a sample of its shape's type."""
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), path
        members = {name.lower(): name for name in shape.members}
        converted = {}
        for key, item in value.items():
            dynamic = key.endswith(".$")
            name = members.get(key.removesuffix(".$").lower())
            assert name is not None, f"{path}.{key} is not a member of {shape.name}"
            member = shape.members[name]
            sample = {"integer": 2, "long": 2, "boolean": True}.get(member.type_name, "x")
            converted[name] = sample if dynamic else _api_names(item, member, f"{path}.{key}")
        return converted
    if isinstance(shape, ListShape):
        return [_api_names(item, shape.member, f"{path}[]") for item in value]
    if isinstance(shape, MapShape):
        # Map keys are the user's (tags): kept; a dynamic one loses its ".$".
        return {key.removesuffix(".$"): item for key, item in value.items()}
    return value


def test_every_batch_request_is_valid_against_botocores_model() -> None:
    model = botocore.session.get_session().get_service_model("batch")
    submit = model.operation_model("SubmitJob").input_shape
    tasks = [s for _, s in states(production().definition) if s.get("Resource") == SUBMIT_JOB_SYNC]
    assert len(tasks) == 7
    for state in tasks:
        request = _api_names(state["Parameters"], submit, "Parameters")
        report = ParamValidator().validate(request, submit)
        assert not report.has_errors(), report.generate_report()


def test_every_job_definition_is_valid_against_botocores_model() -> None:
    model = botocore.session.get_session().get_service_model("batch")
    register = model.operation_model("RegisterJobDefinition").input_shape
    definitions = production().job_definitions
    assert definitions
    for request in definitions.values():
        report = ParamValidator().validate(request.kwargs(), register)
        assert not report.has_errors(), report.generate_report()


# -- what the flow becomes --------------------------------------------------------------------


def test_a_branch_is_a_parallel_state_and_its_join_one_job_after_it() -> None:
    document = production().definition
    split = document["States"]["start.split"]
    assert split["Type"] == "Parallel" and split["ResultPath"] is None
    assert [b["StartAt"] for b in split["Branches"]] == ["left", "right"]
    assert document["States"]["start"]["Next"] == "start.split"
    assert split["Next"] == "join_sides"
    for branch in split["Branches"]:
        ends = [s for s in branch["States"].values() if s.get("End")]
        assert len(ends) == 1


def test_a_foreach_reads_its_size_back_and_runs_one_array_job_per_body_step() -> None:
    document = production().definition["States"]
    assert document["join_sides"]["Next"] == "join_sides.size"
    size = document["join_sides.size"]
    assert size["Resource"] == GET_OBJECT
    assert size["Parameters"]["Bucket"] == "bucket"
    assert size["Parameters"]["Key.$"] == (
        "States.Format('bw/ProductionFlow/runs/{}/join_sides/1/array-size', $$.Execution.Name)"
    )
    assert size["Next"] == "square"
    square = document["square"]["Parameters"]
    assert square["ArrayProperties"] == {"Size.$": "$.batchwright.foreach.join_sides.size"}
    assert "--array-index-variable" in square["ContainerOverrides"]["Command"]
    # The join is one job, after the array job.
    assert document["square"]["Next"] == "gather"
    assert "ArrayProperties" not in document["gather"]["Parameters"]


def test_retry_is_the_states_retry_and_the_run_id_the_executions_name() -> None:
    document = production().definition
    found = dict(states(document))
    api, step = found["right"]["Retry"]
    assert step == {
        "ErrorEquals": ["States.TaskFailed"],
        "IntervalSeconds": 1,
        "MaxAttempts": 1,
        "BackoffRate": 1.0,
    }
    # Batch's own API errors (throttling) are retried with jitter on every step, apart
    # from @retry.
    assert "Batch.ClientException" in api["ErrorEquals"] and api["JitterStrategy"] == "FULL"
    assert [r["ErrorEquals"] for r in found["left"]["Retry"]] == [api["ErrorEquals"]]
    environment_of = {
        e["Name"]: e for e in found["right"]["Parameters"]["ContainerOverrides"]["Environment"]
    }
    assert environment_of["BATCHWRIGHT_EXECUTION"]["Value.$"] == "$$.Execution.Name"
    assert environment_of[RETRY_COUNT_VARIABLE]["Value.$"] == (
        "States.Format('{}', $$.State.RetryCount)"
    )
    assert environment_of["BATCHWRIGHT_USER"]["Value"] == "deployer"
    assert json.loads(environment_of["BATCHWRIGHT_TAGS"]["Value"]) == ["nightly"]
    assert found["right"]["Parameters"]["Tags"]["batchwright:run.$"] == "$$.Execution.Name"


def test_a_failing_step_is_recorded_then_fails_the_execution_naming_it() -> None:
    found = dict(states(production().definition))
    for name, state in found.items():
        if state.get("Resource") != SUBMIT_JOB_SYNC:
            continue
        (catch,) = state["Catch"]
        assert catch == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.batchwright.error",
            "Next": f"{name}.record",
        }
        record = found[f"{name}.record"]
        assert record["Resource"] == PUT_OBJECT and record["Next"] == f"{name}.failed"
        assert record["Parameters"]["Key.$"] == (
            f"States.Format('bw/ProductionFlow/runs/{{}}/_deployment/failed-{name}.json', "
            "$$.Execution.Name)"
        )
        assert record["Parameters"]["Body.$"] == "States.JsonToString($.batchwright.error)"
        # Recording is best effort: the execution fails with the step's name either way.
        assert record["Catch"][0]["Next"] == f"{name}.failed"
        failed = found[f"{name}.failed"]
        assert failed["Type"] == "Fail"
        assert name in failed["Error"] and f"step '{name}'" in failed["Cause"]


def test_parameters_come_from_the_input_with_every_default_when_it_has_none() -> None:
    document = production().definition["States"]
    assert production().definition["StartAt"] == "Input"
    assert document["Input"]["Choices"][0]["Next"] == "Parameters"
    assert document["Defaults"]["ResultPath"] == "$.Parameters"
    assert document["Defaults"]["Next"] == "Parameters"
    # Stored in S3 for start, not passed in its overrides (8 KiB for everything).
    stored = document["Parameters"]
    assert stored["Resource"] == PUT_OBJECT and stored["Next"] == "start"
    assert stored["Parameters"]["Body.$"] == "States.JsonToString($.Parameters)"
    assert "_deployment/parameters.json" in stored["Parameters"]["Key.$"]
    start = document["start"]["Parameters"]["ContainerOverrides"]["Environment"]
    assert not [e for e in start if "Parameters" in str(e.get("Value.$", ""))]


class CaughtFlow(FlowSpec):
    @catch(var="problem")
    @retry(times=2, minutes_between_retries=1)
    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


def test_catch_runs_the_fallback_attempt_and_goes_on() -> None:
    document = compiled(CaughtFlow).definition["States"]
    assert document["start"]["Retry"][1]["MaxAttempts"] == 2
    assert document["start"]["Retry"][1]["IntervalSeconds"] == 60
    # The step's failure goes to the fallback; an API error (nothing ran) does not.
    to_fallback, otherwise = document["start"]["Catch"]
    assert to_fallback["ErrorEquals"] == ["States.TaskFailed"]
    assert to_fallback["Next"] == "start.caught"
    assert otherwise["ErrorEquals"] == ["States.ALL"] and otherwise["Next"] == "start.record"
    fallback = document["start.caught"]
    assert fallback["Next"] == "end" and document["start"]["Next"] == "end"
    assert fallback["Catch"][0]["Next"] == "start.record"
    variables = {e["Name"]: e for e in fallback["Parameters"]["ContainerOverrides"]["Environment"]}
    # The attempt after the last retry: the task runs @catch's stand-in.
    assert variables[RETRY_COUNT_VARIABLE]["Value"] == "3"
    assert asl_problems(compiled(CaughtFlow).definition) == []


# -- refusals ---------------------------------------------------------------------------------


class LocalStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @batch
    @step
    def end(self):
        pass


@pytest.mark.parametrize(
    ("flow_class", "expected"),
    [
        (_flow("switch_flow.py", "SwitchFlow"), "step 'start': a switch"),
        (
            _flow("nested_foreach_flow.py", "NestedForeachFlow"),
            "step 'by_color': a foreach inside a foreach",
        ),
        (LocalStepFlow, "step 'start': runs locally, but every step of a deployed flow"),
    ],
)
def test_what_a_state_machine_cannot_run_is_refused_before_anything_is_made(
    flow_class: type, expected: str
) -> None:
    with pytest.raises(CompileError) as refused:
        compiled(flow_class)
    assert expected in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_local_datastore_is_refused_with_every_other_reason_at_once() -> None:
    with pytest.raises(CompileError) as refused:
        compiled(LocalStepFlow, root="/tmp/store")
    message = str(refused.value)
    assert "is not in S3" in message and "runs locally" in message


def test_promoting_every_step_to_batch_makes_a_local_step_deployable() -> None:
    document = compiled(LocalStepFlow, with_options=("batch",)).definition
    assert document["States"]["start"]["Resource"] == SUBMIT_JOB_SYNC


def _included_flow(default: Path) -> type:
    from batchwright import IncludeFile

    class IncludedFlow(FlowSpec):
        notes = IncludeFile("notes", default=str(default))

        @batch(cpu=1, memory=512)
        @step
        def start(self):
            self.next(self.end)

        @batch(cpu=1, memory=512)
        @step
        def end(self):
            pass

    return IncludedFlow


def test_includefile_defaults_travel_in_the_input_and_given_values_win(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("read when deployed")
    document = compiled(_included_flow(notes)).definition
    found = document["States"]
    assert found["Input"]["Choices"][0]["Next"] == "Files"
    assert found["Files"]["Result"] == {"notes": "read when deployed"}
    assert found["Arguments"]["Parameters"] == {
        "Parameters.$": "States.JsonMerge($.batchwright.files, $.Parameters, false)"
    }
    assert found["Arguments"]["Next"] == "Parameters"
    assert asl_problems(document) == []


def test_an_includefile_default_larger_than_the_input_limit_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x" * (256 * 1024 + 1))
    with pytest.raises(CompileError) as refused:
        compiled(_included_flow(notes))
    message = str(refused.value)
    assert "IncludeFile notes" in message and "262,144 bytes" in message
    assert "Keep the file in S3" in message


class NeedsInputFlow(FlowSpec):
    day = Parameter("day", required=True)

    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


def test_a_scheduled_flow_refuses_a_required_parameter_without_default() -> None:
    definition = load_definition(NeedsInputFlow, ())
    plan = make_plan(NeedsInputFlow.__name__, definition.decorators, ENVIRONMENT)
    arguments = {
        "datastore_root": "s3://bucket/bw",
        "code_package": PACKAGE,
        "environment": {},
        "flow_file": "flow.py",
    }
    # Triggered runs pass it; a schedule passes nothing.
    assert compile_flow(definition, plan, **arguments).definition
    with pytest.raises(CompileError, match="parameter 'day': it is required and has no default"):
        compile_flow(definition, plan, scheduled=True, **arguments)
