"""``localaws deploy`` brings up what a flow's state machine stack synthesizes: its file
assets published to S3 as ``cdk deploy`` publishes them, a job definition without a name,
state machines (a definition string with tokens; a definition file with substitutions),
their log group and roles, an EventBridge Scheduler schedule, and the outputs. A changed
definition updates the same state machine; ``localaws destroy`` takes it all down.

A small CDK app is synthesized here into a temporary ``cdk.out`` and deployed from it, as
the command does, into an in-process moto server of this module's own (nothing runs in a
container, so no Docker is needed).
"""

from __future__ import annotations

import io
import json
import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tests.cdk.sample_synth  # noqa: F401  (puts the pinned Node.js on PATH for jsii)
from tests.conftest import in_ci

from batchwright.environment.assembly import stack_template
from batchwright_localaws import LocalAws, changes
from batchwright_localaws import deploy as local_deploy

try:
    from moto import server as moto_server
except ImportError:  # pragma: no cover - moto is a dev dependency
    if in_ci():
        raise
    pytest.skip("moto[server] is not installed", allow_module_level=True)

STACK = "FlowMachineStack"
ACCOUNT = local_deploy.ACCOUNT_ID
REGION = "us-east-1"
ASSET_BUCKET = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
CODE = b"print('the flow code package')\n"
DIRECTORY = {"flow.py": "# the flow\n", "lib/util.py": "# a module\n"}
FILE_DEFINITION = {
    "StartAt": "Submit",
    "States": {"Submit": {"Type": "Pass", "Result": {"job": "${JobDefinition}"}, "End": True}},
}


def synthesize(outdir: Path, code: Path, greeting: str) -> Path:
    """The app of a flow's state machine, synthesized into ``outdir``."""
    import aws_cdk as cdk
    from aws_cdk import aws_batch, aws_logs, aws_s3_assets, aws_scheduler, aws_scheduler_targets
    from aws_cdk import aws_stepfunctions as sfn

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, STACK)
    package = aws_s3_assets.Asset(stack, "CodePackage", path=str(code))
    aws_s3_assets.Asset(stack, "CodeDirectory", path=str(code.parent / "directory"))
    job = aws_batch.CfnJobDefinition(
        stack,
        "StepJob",
        type="container",
        container_properties=aws_batch.CfnJobDefinition.ContainerPropertiesProperty(
            image="batchwright/job:test",
            command=["python3", "-c", "pass"],
            resource_requirements=[
                aws_batch.CfnJobDefinition.ResourceRequirementProperty(type="VCPU", value="1"),
                aws_batch.CfnJobDefinition.ResourceRequirementProperty(type="MEMORY", value="512"),
            ],
        ),
    )
    logs = aws_logs.LogGroup(stack, "MachineLogs", removal_policy=cdk.RemovalPolicy.DESTROY)
    definition = {
        "Comment": greeting,
        "StartAt": "Describe",
        "States": {
            "Describe": {
                "Type": "Pass",
                "Result": {
                    "codeBucket": package.s3_bucket_name,
                    "codeKey": package.s3_object_key,
                    "jobDefinition": job.ref,
                },
                "End": True,
            }
        },
    }
    machine = sfn.StateMachine(
        stack,
        "Machine",
        definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
        logs=sfn.LogOptions(destination=logs, level=sfn.LogLevel.ALL),
        tracing_enabled=True,
    )
    definition_file = code.parent / "definition.json"
    definition_file.write_text(json.dumps(FILE_DEFINITION))
    sfn.StateMachine(
        stack,
        "FileMachine",
        definition_body=sfn.DefinitionBody.from_file(str(definition_file)),
        definition_substitutions={"JobDefinition": job.ref},
    )
    aws_scheduler.Schedule(
        stack,
        "Nightly",
        schedule=aws_scheduler.ScheduleExpression.cron(hour="3", minute="0"),
        target=aws_scheduler_targets.StepFunctionsStartExecution(
            machine, input=aws_scheduler.ScheduleTargetInput.from_object({"trigger": "nightly"})
        ),
    )
    cdk.CfnOutput(stack, "StateMachineArn", value=machine.state_machine_arn)
    cdk.CfnOutput(stack, "StateMachineName", value=machine.state_machine_name)
    cdk.CfnOutput(stack, "CodePackageUrl", value=package.s3_object_url)
    cdk.CfnOutput(stack, "JobDefinitionArn", value=job.ref)
    app.synth()
    return outdir


@pytest.fixture(scope="module")
def assemblies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two syntheses of the app: ``first``, and ``changed`` (another Comment)."""
    folder = tmp_path_factory.mktemp("flow-app")
    code = folder / "package.py"
    code.write_bytes(CODE)
    for name, text in DIRECTORY.items():
        (folder / "directory" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "directory" / name).write_text(text)
    return {
        "first": synthesize(folder / "first.out", code, "hello"),
        "changed": synthesize(folder / "changed.out", code, "hello again"),
    }


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield LocalAws(
            endpoint=f"http://127.0.0.1:{port}",
            region=REGION,
            image="batchwright/job:test",
            moto_pid=os.getpid(),
            dockerd_pid=None,
            state_dir=str(tmp_path_factory.mktemp("localaws")),
        )
    finally:
        server.stop()


def _deploy(local: LocalAws, cdk_out: Path) -> local_deploy.Deployment:
    template = stack_template(cdk_out, STACK)
    return local_deploy.deploy(local, template, STACK, cdk_out=cdk_out)


@pytest.fixture(autouse=True)
def no_stack_left(local: LocalAws) -> Iterator[None]:
    """Destroys what a failed test left deployed, so the next one starts afresh."""
    yield
    if changes.load_state(local.client("s3"), STACK) is not None:
        local_deploy.destroy(local, STACK)


def _of_type(cdk_out: Path, kind: str, prefix: str = "") -> list[str]:
    """The logical ids of the template's ``kind`` resources (whose id starts with
    ``prefix``: the construct's id)."""
    resources = stack_template(cdk_out, STACK)["Resources"]
    return sorted(k for k, r in resources.items() if r["Type"] == kind and k.startswith(prefix))


def _asset_key(cdk_out: Path, name: str) -> str:
    """The object key the asset manifest gives the file asset shown as ``name``."""
    manifest = json.loads((cdk_out / f"{STACK}.assets.json").read_text())
    (asset,) = [a for a in manifest["files"].values() if a.get("displayName") == name]
    (destination,) = asset["destinations"].values()
    return str(destination["objectKey"])


def _definition(local: LocalAws, arn: str) -> dict[str, Any]:
    machine = local.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    return dict(json.loads(machine["definition"]))


def _schedules_targeting(local: LocalAws, arn: str) -> list[dict[str, Any]]:
    scheduler = local.client("scheduler")
    found = []
    for summary in scheduler.list_schedules()["Schedules"]:
        schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
        if schedule["Target"]["Arn"] == arn:
            found.append(schedule)
    return found


def test_deploy_publishes_the_assets_and_creates_state_machines_and_a_schedule(
    local: LocalAws, assemblies: dict[str, Path]
) -> None:
    cdk_out = assemblies["first"]
    deployed = _deploy(local, cdk_out)
    assert not deployed.skipped.keys() - {"CDKMetadata"}, deployed.skipped
    s3 = local.client("s3")

    # The file assets are where the template points, with their bytes.
    code_key = _asset_key(cdk_out, "CodePackage")
    assert f"s3://{ASSET_BUCKET}/{code_key}" in deployed.assets
    assert s3.get_object(Bucket=ASSET_BUCKET, Key=code_key)["Body"].read() == CODE
    assert deployed.outputs["CodePackageUrl"] == f"s3://{ASSET_BUCKET}/{code_key}"
    zipped = s3.get_object(Bucket=ASSET_BUCKET, Key=_asset_key(cdk_out, "CodeDirectory"))
    with zipfile.ZipFile(io.BytesIO(zipped["Body"].read())) as archive:
        assert {n: archive.read(n).decode() for n in archive.namelist()} == DIRECTORY

    # A job definition with a generated name; its ARN is what the definitions hold.
    (job,) = _of_type(cdk_out, "AWS::Batch::JobDefinition")
    job_arn = deployed.physical_ids[job]
    (registered,) = local.client("batch").describe_job_definitions(jobDefinitions=[job_arn])[
        "jobDefinitions"
    ]
    assert registered["status"] == "ACTIVE"
    assert registered["jobDefinitionName"].startswith(f"{STACK}-{job}-")
    assert deployed.outputs["JobDefinitionArn"] == job_arn

    # The state machine from a definition string with tokens: resolved.
    machines = _of_type(cdk_out, "AWS::StepFunctions::StateMachine", "Machine")
    arn = deployed.outputs["StateMachineArn"]
    assert [arn] == [deployed.physical_ids[k] for k in machines]
    assert arn.endswith(f":stateMachine:{deployed.outputs['StateMachineName']}")
    definition = _definition(local, arn)
    assert definition["Comment"] == "hello"
    assert definition["States"]["Describe"]["Result"] == {
        "codeBucket": ASSET_BUCKET,
        "codeKey": code_key,
        "jobDefinition": job_arn,
    }
    machine = local.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    (role,) = _of_type(cdk_out, "AWS::IAM::Role", "MachineRole")
    assert (
        machine["roleArn"]
        == local.client("iam").get_role(RoleName=deployed.physical_ids[role])["Role"]["Arn"]
    )
    (group,) = _of_type(cdk_out, "AWS::Logs::LogGroup")
    (destination,) = machine["loggingConfiguration"]["destinations"]
    log_group = deployed.physical_ids[group]
    assert destination["cloudWatchLogsLogGroup"]["logGroupArn"].endswith(
        f":log-group:{log_group}:*"
    )
    assert machine["loggingConfiguration"]["level"] == "ALL"
    assert machine["tracingConfiguration"] == {"enabled": True}
    logs = local.client("logs").describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert [g["logGroupName"] for g in logs] == [log_group]

    # The state machine from a definition file (itself an asset), with substitutions.
    (file_machine_id,) = _of_type(cdk_out, "AWS::StepFunctions::StateMachine", "FileMachine")
    file_machine = deployed.physical_ids[file_machine_id]
    assert _definition(local, file_machine)["States"]["Submit"]["Result"] == {"job": job_arn}

    # The schedule starts the first one, with the input and role the template gives.
    (schedule,) = _schedules_targeting(local, arn)
    (schedule_id,) = _of_type(cdk_out, "AWS::Scheduler::Schedule")
    assert schedule["Name"] == deployed.physical_ids[schedule_id]
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert json.loads(schedule["Target"]["Input"]) == {"trigger": "nightly"}
    assert schedule["Target"]["RoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/{STACK}-")

    # Destroy takes them down; the bootstrap bucket and its assets stay, as on AWS.
    destroyed = local_deploy.destroy(local, STACK)
    assert not destroyed.failed, destroyed.failed
    assert set(destroyed.deleted) == set(deployed.physical_ids)
    assert not _schedules_targeting(local, arn)
    listed = local.client("stepfunctions").list_state_machines()["stateMachines"]
    assert not {m["stateMachineArn"] for m in listed} & {arn, file_machine}
    assert not local.client("logs").describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    (registered,) = local.client("batch").describe_job_definitions(jobDefinitions=[job_arn])[
        "jobDefinitions"
    ]
    assert registered["status"] == "INACTIVE"
    assert s3.get_object(Bucket=ASSET_BUCKET, Key=code_key)["Body"].read() == CODE


def test_a_changed_definition_updates_the_same_state_machine(
    local: LocalAws, assemblies: dict[str, Path]
) -> None:
    first = _deploy(local, assemblies["first"])
    again = _deploy(local, assemblies["first"])
    assert again.unchanged == first.created and not (again.created or again.updated)

    changed = _deploy(local, assemblies["changed"])
    assert changed.updated == _of_type(
        assemblies["changed"], "AWS::StepFunctions::StateMachine", "Machine"
    )
    assert not (changed.created or changed.replaced or changed.deleted)
    assert changed.physical_ids == first.physical_ids
    assert changed.outputs == first.outputs
    arn = changed.outputs["StateMachineArn"]
    definition = _definition(local, arn)
    assert definition["Comment"] == "hello again"
    job_arn = first.outputs["JobDefinitionArn"]
    assert definition["States"]["Describe"]["Result"]["jobDefinition"] == job_arn
    assert len(_schedules_targeting(local, arn)) == 1

    destroyed = local_deploy.destroy(local, STACK)
    assert not destroyed.failed, destroyed.failed


def test_the_command_deploys_from_cdk_out_and_destroys(
    local: LocalAws,
    assemblies: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import batchwright_localaws
    from batchwright.cli import main as batchwright_main

    monkeypatch.setattr(batchwright_localaws, "current", lambda: local)
    outputs = tmp_path / "cdk-outputs.json"
    command = ["localaws", "deploy", "--cdk-out", str(assemblies["first"]), "--stack", STACK]
    assert batchwright_main([*command, "--outputs-file", str(outputs)]) == 0
    out = capsys.readouterr().out
    assert "file assets published: 4" in out  # code, directory, definition file, template
    written = json.loads(outputs.read_text())[STACK]
    assert written["StateMachineArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:")
    code_key = _asset_key(assemblies["first"], "CodePackage")
    assert written["CodePackageUrl"] == f"s3://{ASSET_BUCKET}/{code_key}"

    assert batchwright_main(["localaws", "destroy", STACK]) == 0
    assert f"destroyed {STACK} in {local.endpoint}" in capsys.readouterr().out
    listed = local.client("stepfunctions").list_state_machines()["stateMachines"]
    assert written["StateMachineArn"] not in {m["stateMachineArn"] for m in listed}
