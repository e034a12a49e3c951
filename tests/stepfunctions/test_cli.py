"""``python flow.py step-functions create|trigger|list-runs|delete`` against moto in this
process (its Step Functions stores definitions and executions without running them).

The refusals run ``python flow.py step-functions create`` as a user does, with AWS
unreachable, so a passing refusal also shows that nothing was called before it."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from tests.environment.descriptors import ACCOUNT, compute_environment, environment, queue

from batchwright.batch.definition import LAST_USED_TAG
from batchwright.cli.command import load_flow_file
from batchwright.cli.flow import main as flow_main
from batchwright.console import Console
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.stepfunctions import deploy

FLOWS = Path(__file__).with_name("flows")
REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/sample-cpu"
#: What every command is given to find the environment.
ENVIRONMENT = ("--environment", "Sample", "--outputs-file")


def _outputs(folder: Path, **changes: Any) -> Path:
    """A 'cdk deploy --outputs-file' JSON holding the test environment (one EC2 queue,
    datastore s3://bucket/bw), with the descriptor's fields in ``changes`` changed."""
    env = environment(queue("cpu", "EC2", compute_environment("cpu", "EC2", types=("c5.xlarge",))))
    env = EnvironmentDescriptor.from_dict({**env.to_dict(), **changes})
    path = folder / "outputs.json"
    path.write_text(json.dumps({env.name: {"BatchwrightEnvironment": env.to_json()}}))
    return path


def _isolate(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    for variable in (
        "BATCHWRIGHT_ENVIRONMENT",
        "BATCHWRIGHT_OUTPUTS_FILE",
        "BATCHWRIGHT_DATASTORE_ROOT",
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("BATCHWRIGHT_USER", "alice")
    monkeypatch.chdir(folder)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """moto in this process, with the environment's bucket."""
    _isolate(monkeypatch, tmp_path)
    with mock_aws(config={"batch": {"use_docker": False}}):
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="bucket")
        yield


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    """The production flow, alone in a folder (its code package is that folder)."""
    folder = tmp_path / "flow"
    folder.mkdir()
    return Path(shutil.copy(FLOWS / "production_flow.py", folder))


def cli(flow_file: Path, *argv: str) -> tuple[int, str, str]:
    """``python FLOW ARGV`` in this process: the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = flow_main(load_flow_file(str(flow_file)), list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def create(flow_file: Path, *argv: str) -> tuple[int, str, str]:
    outputs = _outputs(flow_file.parent.parent)
    return cli(flow_file, "step-functions", "create", *ENVIRONMENT, str(outputs), *argv)


def _role_policy(role: str) -> dict[str, Any]:
    iam = boto3.client("iam")
    policy = iam.get_role_policy(RoleName=role, PolicyName=deploy.POLICY_NAME)["PolicyDocument"]
    return policy if isinstance(policy, dict) else json.loads(policy)


def _statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def _machines() -> list[dict[str, Any]]:
    return list(boto3.client("stepfunctions").list_state_machines()["stateMachines"])


# --- create ---------------------------------------------------------------------------------


def test_create_deploys_the_compiled_flow_with_a_role_naming_only_what_it_uses(
    aws: None, flow: Path
) -> None:
    code, expected_json, err = create(flow, "--only-json")
    assert code == 0, err
    code, out, err = create(flow)
    assert code == 0, err
    assert "Traceback" not in err
    assert "State machine ProductionFlow created" in out

    sfn = boto3.client("stepfunctions")
    (machine,) = _machines()
    described = sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])
    definition = json.loads(described["definition"])
    assert definition == json.loads(expected_json)
    tags = {
        t["key"]: t["value"]
        for t in sfn.list_tags_for_resource(resourceArn=machine["stateMachineArn"])["tags"]
    }
    assert tags == {
        deploy.FLOW_TAG: "ProductionFlow",
        deploy.DEPLOYED_BY_TAG: "alice",
        deploy.DATASTORE_TAG: "s3://bucket/bw",
    }

    # Every job definition the states name is registered, once, stamped as used.
    named = {
        state["Parameters"]["JobDefinition"]
        for state in _task_states(definition)
        if state.get("Resource", "").startswith("arn:aws:states:::batch:")
    }
    batch = boto3.client("batch")
    for name in named:
        (registered,) = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
        assert registered["status"] == "ACTIVE"
        assert LAST_USED_TAG in registered["tags"]

    # The role: submit to exactly the queue used, with batchwright's definitions (those of
    # earlier deploys too: executions in flight still name them), and nothing broader.
    role = deploy.role_name("ProductionFlow", REGION, "states")
    assert described["roleArn"].endswith(f"/{role}")
    statements = _statements(_role_policy(role))
    assert statements["SubmitToTheseQueues"]["Resource"] == [QUEUE_ARN]
    prefix = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/"
    assert statements["SubmitWithBatchwrightDefinitions"]["Resource"] == [prefix + "batchwright-*"]
    assert all(n.startswith("batchwright-") for n in named)
    assert statements["FollowJobs"] == {
        "Sid": "FollowJobs",
        "Effect": "Allow",
        "Action": "batch:DescribeJobs",
        "Resource": "*",
    }
    assert statements["StopOwnJobs"] == {
        "Sid": "StopOwnJobs",
        "Effect": "Allow",
        "Action": "batch:TerminateJob",
        "Resource": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/*",
        "Condition": {"Null": {"aws:ResourceTag/batchwright:run": "false"}},
    }
    assert statements["SyncEventsRule"]["Resource"] == (
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForBatchJobsRule"
    )
    # The states write the run's Parameters and failure records, and read the array sizes.
    assert statements["WriteDeploymentRecords"] == {
        "Sid": "WriteDeploymentRecords",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::bucket/bw/ProductionFlow/runs/*/_deployment/*",
    }
    assert statements["ReadArraySizes"] == {
        "Sid": "ReadArraySizes",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::bucket/bw/ProductionFlow/runs/*",
    }
    writes = {
        state["Parameters"]["Key.$"]
        for state in _task_states(definition)
        if state.get("Resource") == "arn:aws:states:::aws-sdk:s3:putObject"
    }
    assert writes and all("bw/ProductionFlow/runs/{}/_deployment/" in key for key in writes)
    trust = boto3.client("iam").get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}
    # The code package is in the datastore, where the states' command fetches it.
    keys = boto3.client("s3").list_objects_v2(Bucket="bucket", Prefix="bw/")["Contents"]
    assert any(k["Key"].endswith(".tar.gz") and k["Key"] in expected_json for k in keys)


def _task_states(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in definition["States"].values():
        yield state
        for branch in state.get("Branches", []):
            yield from _task_states(branch)


def test_create_again_updates_the_same_state_machine(aws: None, flow: Path) -> None:
    assert create(flow)[0] == 0
    (first,) = _machines()
    code, out, err = create(flow, "--tag", "nightly")
    assert code == 0, err
    assert "State machine ProductionFlow updated" in out
    assert "0 registered" in out  # every definition was already active
    (second,) = _machines()
    assert second["stateMachineArn"] == first["stateMachineArn"]
    definition = json.loads(
        boto3.client("stepfunctions").describe_state_machine(
            stateMachineArn=second["stateMachineArn"]
        )["definition"]
    )
    # The new deployment's run tags reach every job's environment.
    start = definition["States"]["start"]["Parameters"]["ContainerOverrides"]["Environment"]
    assert {"Name": "BATCHWRIGHT_TAGS", "Value": '["nightly"]'} in start


def test_create_with_a_name_and_implicit_batch(aws: None, tmp_path: Path) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "plain_flow.py"
    path.write_text(PLAIN_FLOW)
    code, _, err = create(path, "--name", "plain-prod")
    assert code == 0, err
    (machine,) = _machines()
    assert machine["name"] == "plain-prod"
    # Both steps (no @batch on either) run on the environment's queue with @batch defaults.
    definition = json.loads(
        boto3.client("stepfunctions").describe_state_machine(
            stateMachineArn=machine["stateMachineArn"]
        )["definition"]
    )
    for step in ("start", "end"):
        assert definition["States"][step]["Parameters"]["JobQueue"] == QUEUE_ARN
    # No foreach: nothing to read back, so the role may not read the runs.
    statements = _statements(_role_policy(deploy.role_name("plain-prod", REGION, "states")))
    assert "ReadArraySizes" not in statements and "WriteDeploymentRecords" in statements


def test_only_json_prints_the_definition_and_calls_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flow: Path
) -> None:
    _isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing answers there
    code, out, err = create(flow, "--only-json")
    assert code == 0, err
    document = json.loads(out)
    assert document["StartAt"] == "Input"
    assert document["States"]["start"]["Resource"] == "arn:aws:states:::batch:submitJob.sync"


# --- trigger, list-runs ---------------------------------------------------------------------


def test_trigger_checks_parameters_then_starts_an_execution_named_by_the_run_id(
    aws: None, flow: Path
) -> None:
    assert create(flow)[0] == 0
    code, out, err = cli(flow, "step-functions", "trigger", "--scale", "many")
    assert code == 2
    assert "Traceback" not in err
    assert "parameter 'scale'" in err and "'many'" in err and "--scale 3" in err
    (machine,) = _machines()
    sfn = boto3.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"] == []

    code, out, err = cli(flow, "step-functions", "trigger", "--scale", "3")
    assert code == 0, err
    run_id = out.split("Run ProductionFlow/")[1].split()[0]
    assert "step-functions list-runs" in out
    assert f"logs {run_id}/STEP --datastore-root s3://bucket/bw" in out
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    assert execution["name"] == run_id
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"Parameters": {"scale": "3"}}

    code, out, err = cli(flow, "step-functions", "list-runs")
    assert code == 0, err
    assert run_id in out and "RUNNING" in out
    code, out, err = cli(flow, "step-functions", "list-runs", "--succeeded")
    assert code == 0, err
    assert run_id not in out and "no succeeded runs" in out


def test_trigger_carries_an_included_file_and_refuses_one_too_big(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "include_flow.py"
    path.write_text(INCLUDE_FLOW)
    assert create(path)[0] == 0
    small = tmp_path / "small.csv"
    small.write_text("a,b\n1,2\n")
    code, _, err = cli(path, "step-functions", "trigger", "--table", str(small))
    assert code == 0, err
    sfn = boto3.client("stepfunctions")
    (machine,) = _machines()
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"Parameters": {"table": "a,b\n1,2\n"}}

    big = tmp_path / "big.csv"
    big.write_text("x" * (256 * 1024 + 1))
    code, _, err = cli(path, "step-functions", "trigger", "--table", str(big))
    assert code == 2
    assert "--table" in err and "262,144" in err and "Traceback" not in err
    assert len(sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]) == 1


def test_trigger_without_a_deployment_says_how_to_deploy(aws: None, flow: Path) -> None:
    code, _, err = cli(flow, "step-functions", "trigger")
    assert code == 1
    assert "no state machine named ProductionFlow" in err and "step-functions create" in err


# --- schedule, delete -----------------------------------------------------------------------


def test_a_scheduled_flow_gets_a_schedule_and_delete_removes_everything(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "scheduled_flow.py"
    path.write_text(SCHEDULED_FLOW)
    code, out, err = create(path)
    assert code == 0, err
    assert "schedule: arn:aws:scheduler:" in out
    scheduler = boto3.client("scheduler")
    found = scheduler.get_schedule(Name="ScheduledFlow")
    (machine,) = _machines()
    assert found["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert found["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert found["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert found["Target"]["Arn"] == machine["stateMachineArn"]
    assert json.loads(found["Target"]["Input"]) == {"Parameters": {}}
    scheduler_role = deploy.role_name("ScheduledFlow", REGION, "scheduler")
    assert found["Target"]["RoleArn"].endswith(f"/{scheduler_role}")
    (statement,) = _role_policy(scheduler_role)["Statement"]
    assert statement["Action"] == "states:StartExecution"
    assert statement["Resource"] == machine["stateMachineArn"]

    code, out, err = cli(path, "step-functions", "delete")
    assert code == 0, err
    assert _machines() == []
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name="ScheduledFlow")
    roles = {r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]}
    assert deploy.role_name("ScheduledFlow", REGION, "states") not in roles
    assert scheduler_role not in roles

    code, out, err = cli(path, "step-functions", "delete")
    assert code == 0, err
    assert "Nothing to delete" in out


def test_a_schedule_removed_from_the_flow_is_deleted_on_the_next_create(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "scheduled_flow.py"
    path.write_text(SCHEDULED_FLOW)
    assert create(path)[0] == 0
    # The same flow, without @schedule (a new file: the first one stays imported).
    unscheduled = folder / "scheduled_flow_v2.py"
    unscheduled.write_text(
        SCHEDULED_FLOW.replace('@schedule(hourly=True, timezone="Europe/Berlin")', "")
    )
    code, out, err = create(unscheduled)
    assert code == 0, err
    assert "schedule ScheduledFlow, left from an earlier deploy, was deleted" in out
    scheduler = boto3.client("scheduler")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name="ScheduledFlow")


# --- refusals -------------------------------------------------------------------------------

PLAIN_FLOW = """
from batchwright import FlowSpec, step


class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PlainFlow()
"""

INCLUDE_FLOW = """
from batchwright import FlowSpec, IncludeFile, batch, step


class IncludeFlow(FlowSpec):
    table = IncludeFile("table", help="a CSV file")

    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    IncludeFlow()
"""

SCHEDULED_FLOW = """
from batchwright import FlowSpec, batch, schedule, step


@schedule(hourly=True, timezone="Europe/Berlin")
class ScheduledFlow(FlowSpec):
    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScheduledFlow()
"""

SWITCH_FLOW = (FLOWS / "switch_flow.py").read_text()

NESTED_FOREACH_FLOW = (FLOWS / "nested_foreach_flow.py").read_text()

PARALLEL_FLOW = """
from batchwright import FlowSpec, batch, parallel, step


class ParallelFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @batch(cpu=1, memory=512)
    @parallel
    @step
    def train(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParallelFlow()
"""

HALF_BATCH_FLOW = """
from batchwright import FlowSpec, batch, step


class HalfFlow(FlowSpec):
    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.local_step)

    @step
    def local_step(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    HalfFlow()
"""

REFUSALS = {
    "no implicit batch": (
        HALF_BATCH_FLOW,
        ["--no-implicit-batch"],
        ["step 'local_step'", "Add @batch to it", "--no-implicit-batch"],
    ),
    "switch": (SWITCH_FLOW, [], ["step 'start'", "switch", "Run the flow with `run`"]),
    "nested foreach": (
        NESTED_FOREACH_FLOW,
        [],
        ["step 'by_color'", "foreach inside a foreach", "Flatten the items"],
    ),
    "parallel": (PARALLEL_FLOW, [], ["step 'train'", "parallel step", "Run it with `run`"]),
    "local datastore": (
        PLAIN_FLOW,
        ["--datastore-root", "local-store"],
        ["is not in S3", "--datastore-root s3://bucket/prefix"],
    ),
    "bad name": (PLAIN_FLOW, ["--name", "my flow"], ["--name='my flow'", "--name my-flow"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_what_a_state_machine_cannot_run_is_refused_before_any_aws_call(
    tmp_path: Path, case: str
) -> None:
    source, argv, fragments = REFUSALS[case]
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "refused_flow.py"
    path.write_text(textwrap.dedent(source))
    outputs = _outputs(tmp_path)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BATCHWRIGHT_", "AWS_"))
    }
    env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing answers: no call may be made
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        NO_COLOR="1",
    )
    done = subprocess.run(
        [sys.executable, str(path), "step-functions", "create", *ENVIRONMENT, str(outputs), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr
    assert not (tmp_path / "local-store").exists()


NAMED_FLOW = """
from batchwright import FlowSpec, Parameter, batch, step


class NamedFlow(FlowSpec):
    name = Parameter("name", default="world")

    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    NamedFlow()
"""


def test_a_parameter_called_name_is_given_to_trigger_and_the_machine_named_before(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "named_flow.py"
    path.write_text(NAMED_FLOW)
    # Metaflow's place for the state machine's name: before the action.
    code, _, err = cli(
        path,
        "step-functions",
        "--name",
        "greeter",
        "create",
        *ENVIRONMENT,
        str(_outputs(tmp_path)),
    )
    assert code == 0, err
    code, _, err = cli(path, "step-functions", "--name", "greeter", "trigger", "--name", "you")
    assert code == 0, err
    sfn = boto3.client("stepfunctions")
    (machine,) = _machines()
    assert machine["name"] == "greeter"
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"Parameters": {"name": "you"}}


def test_trigger_finds_the_state_machine_the_environment_publishes(
    aws: None, flow: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FlowStateMachine in the environment's stack has a name CloudFormation chose;
    the environment's descriptor lists it under ``flows``, so no --name is needed."""
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="BatchwrightSample-ProductionFlowA1B2",
        definition=json.dumps({"StartAt": "s", "States": {"s": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/states",
    )["stateMachineArn"]
    env = environment(queue("cpu", "EC2"))
    published = EnvironmentDescriptor.from_dict({**env.to_dict(), "flows": {"ProductionFlow": arn}})
    outputs = flow.parent / "cdk-outputs.json"
    outputs.write_text(json.dumps({env.name: {"BatchwrightEnvironment": published.to_json()}}))
    monkeypatch.setenv("BATCHWRIGHT_ENVIRONMENT", env.name)
    monkeypatch.setenv("BATCHWRIGHT_OUTPUTS_FILE", str(outputs))

    code, out, err = cli(flow, "step-functions", "trigger", "--scale", "2")
    assert code == 0, err
    run_id = out.split("Run ProductionFlow/")[1].split()[0]
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == run_id
    code, out, err = cli(flow, "step-functions", "list-runs")
    assert code == 0 and run_id in out, err


# --- regions --------------------------------------------------------------------------------

OTHER_REGION = "eu-west-1"


def _start_environment(arn: str, region: str) -> dict[str, str]:
    described = boto3.client("stepfunctions", region_name=region).describe_state_machine(
        stateMachineArn=arn
    )
    start = json.loads(described["definition"])["States"]["start"]
    return {
        variable["Name"]: variable.get("Value", "")
        for variable in start["Parameters"]["ContainerOverrides"]["Environment"]
    }


def test_the_region_is_resolved_once_and_told_to_the_jobs(aws: None, flow: Path) -> None:
    """--region wins over the shell's region, everywhere: the state machine, the jobs'
    environment and the hints; an action elsewhere names the region it looked in."""
    code, out, err = create(flow, "--region", OTHER_REGION)
    assert code == 0, err
    assert _machines() == []  # nothing in the shell's region
    sfn = boto3.client("stepfunctions", region_name=OTHER_REGION)
    (machine,) = sfn.list_state_machines()["stateMachines"]
    assert f":states:{OTHER_REGION}:" in machine["stateMachineArn"]
    environment = _start_environment(machine["stateMachineArn"], OTHER_REGION)
    # The deployer's shell says us-east-1: the jobs are told the state machine's region.
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == OTHER_REGION
    assert f"step-functions trigger --region {OTHER_REGION}" in out

    code, out, err = cli(flow, "step-functions", "trigger", "--region", OTHER_REGION)
    assert code == 0, err
    assert f"list-runs --region {OTHER_REGION}" in out
    assert len(sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]) == 1

    # No --region and no environment found: the configured region, named.
    code, out, err = cli(flow, "step-functions", "delete")
    assert code == 0, err
    assert f"Nothing to delete: region {REGION} has no state machine ProductionFlow" in out
    code, out, err = cli(flow, "step-functions", "delete", "--region", OTHER_REGION)
    assert code == 0, err
    assert "State machine ProductionFlow: deleted." in out
    assert sfn.list_state_machines()["stateMachines"] == []


def test_create_deploys_to_the_environments_region_and_says_so(aws: None, flow: Path) -> None:
    outputs = _outputs(flow.parent.parent, region=OTHER_REGION)
    code, out, err = cli(
        flow, "step-functions", "create", "--environment", "Sample", "--outputs-file", str(outputs)
    )
    assert code == 0, err
    sfn = boto3.client("stepfunctions", region_name=OTHER_REGION)
    (machine,) = sfn.list_state_machines()["stateMachines"]
    environment = _start_environment(machine["stateMachineArn"], OTHER_REGION)
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == OTHER_REGION
    assert f"--region {OTHER_REGION}" in out  # not the configured default
    # In the configured region, the hint has no --region.
    code, out, err = create(flow)
    assert code == 0, err
    assert "--region" not in out.split("Start a run:")[1]
    (machine,) = _machines()
    environment = _start_environment(machine["stateMachineArn"], REGION)
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == REGION


def test_trigger_and_delete_take_the_region_of_the_published_state_machine(
    aws: None, flow: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sfn = boto3.client("stepfunctions", region_name=OTHER_REGION)
    arn = sfn.create_state_machine(
        name="BatchwrightSample-ProductionFlowA1B2",
        definition=json.dumps({"StartAt": "s", "States": {"s": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/states",
    )["stateMachineArn"]
    outputs = _outputs(flow.parent, flows={"ProductionFlow": arn})
    monkeypatch.setenv("BATCHWRIGHT_ENVIRONMENT", "Sample")
    monkeypatch.setenv("BATCHWRIGHT_OUTPUTS_FILE", str(outputs))
    code, out, err = cli(flow, "step-functions", "trigger")
    assert code == 0, err
    assert f"--region {OTHER_REGION}" in out
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    code, out, err = cli(flow, "step-functions", "list-runs")
    assert code == 0, err
    assert "RUNNING" in out
    # delete acts on what create made (by name), never on the stack's state machine, but
    # looks in the same region.
    code, out, err = cli(flow, "step-functions", "delete")
    assert code == 0, err
    assert f"region {OTHER_REGION} has no state machine ProductionFlow" in out
    assert len(sfn.list_state_machines()["stateMachines"]) == 1


# --- ownership ------------------------------------------------------------------------------


def test_a_role_of_the_same_name_that_is_not_ours_is_refused_not_rewritten(
    aws: None, flow: Path
) -> None:
    iam = boto3.client("iam")
    role = deploy.role_name("ProductionFlow", REGION, "states")
    theirs = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=json.dumps(deploy._trust("ec2.amazonaws.com", ACCOUNT)),
    )
    iam.put_role_policy(
        RoleName=role, PolicyName=deploy.POLICY_NAME, PolicyDocument=json.dumps(theirs)
    )
    code, _, err = create(flow)
    assert code == 1
    assert "Traceback" not in err
    assert f"role {role} already exists" in err and "--role-arn" in err
    assert f"delete role {role}" in err
    assert _role_policy(role) == theirs  # untouched, trust included
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert _machines() == []
    # The same role made by another state machine's deploy is refused as well.
    iam.tag_role(RoleName=role, Tags=[{"Key": deploy.STATE_MACHINE_TAG, "Value": "Other"}])
    code, _, err = create(flow)
    assert code == 1 and f"{deploy.STATE_MACHINE_TAG}=Other" in err


def test_a_schedule_of_the_same_name_starting_something_else_is_left_alone(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "plain_flow.py"
    path.write_text(PLAIN_FLOW)
    scheduler = boto3.client("scheduler")
    other = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:SomeoneElse"
    target = {"Arn": other, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/theirs"}
    scheduler.create_schedule(
        Name="PlainFlow",
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
    )
    code, out, err = create(path)  # no @schedule: an earlier one of ours would go
    assert code == 0, err
    assert "schedule: none" in out and "left alone" in out
    assert scheduler.get_schedule(Name="PlainFlow")["Target"]["Arn"] == other
    code, out, err = cli(path, "step-functions", "delete")
    assert code == 0, err
    assert "State machine PlainFlow: deleted." in out and "schedule: absent" in out
    assert scheduler.get_schedule(Name="PlainFlow")["Target"]["Arn"] == other
    code, out, err = cli(path, "step-functions", "delete")  # nothing of ours is left
    assert code == 0, err
    assert f"Nothing to delete: region {REGION}" in out and "left alone" in out + err
    assert scheduler.get_schedule(Name="PlainFlow")["Target"]["Arn"] == other


def test_a_schedule_of_the_same_name_starting_something_else_is_not_rewritten(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "scheduled_flow.py"
    path.write_text(SCHEDULED_FLOW)
    scheduler = boto3.client("scheduler")
    other = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:SomeoneElse"
    scheduler.create_schedule(
        Name="ScheduledFlow",
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": other, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/theirs"},
    )
    code, _, err = create(path)
    assert code == 1
    assert "schedule ScheduledFlow already exists" in err and "--name" in err
    found = scheduler.get_schedule(Name="ScheduledFlow")
    assert found["Target"]["Arn"] == other and found["ScheduleExpression"] == "rate(1 hour)"


# --- parameters -----------------------------------------------------------------------------

CONFIGURED_FLOW = """
from batchwright import Config, FlowSpec, Parameter, batch, step


class ConfiguredFlow(FlowSpec):
    settings = Config("settings", default_value={"level": None})
    level = Parameter(
        "level", type=int, required=True, default=lambda ctx: ctx.configs["settings"]["level"]
    )

    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConfiguredFlow()
"""


def test_trigger_checks_parameters_with_the_configs_deployed(aws: None, tmp_path: Path) -> None:
    """The deployed start resolves defaults with the configs resolved at deploy time: so
    does trigger, whatever the local defaults say."""
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "configured_flow.py"
    path.write_text(CONFIGURED_FLOW)
    code, _, err = create(path, "--config-value", "settings", '{"level": 3}')
    assert code == 0, err
    # Locally 'level' has no default (settings.level is None); deployed, it is 3.
    code, _, err = cli(path, "step-functions", "trigger")
    assert code == 0, err
    sfn = boto3.client("stepfunctions")
    (machine,) = _machines()
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"Parameters": {}}

    # Deployed again with the local configs: now the default is missing at trigger too.
    assert create(path)[0] == 0
    code, _, err = cli(path, "step-functions", "trigger")
    assert code == 2
    assert "parameter 'level' is required" in err and "Traceback" not in err
    assert len(sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]) == 1


def test_a_scheduled_flow_with_a_required_parameter_without_default_is_refused(
    aws: None, tmp_path: Path
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "scheduled_flow.py"
    path.write_text(
        SCHEDULED_FLOW.replace(
            "from batchwright import FlowSpec, batch, schedule, step",
            "from batchwright import FlowSpec, Parameter, batch, schedule, step",
        ).replace(
            "class ScheduledFlow(FlowSpec):\n",
            'class ScheduledFlow(FlowSpec):\n    day = Parameter("day", required=True)\n',
        )
    )
    code, _, err = create(path)
    assert code == 2
    assert "Traceback" not in err
    assert "parameter 'day': it is required and has no default" in err
    assert "Give it a default, or drop @schedule" in err
    assert _machines() == []
