"""FlowStateMachine: a flow deployed as a Step Functions state machine on a
BatchEnvironment, synthesized once per module with cdk-nag attached."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from batchwright.environment.assembly import References, evaluate
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY
from batchwright.environment.sources import render_intrinsics
from batchwright.stepfunctions.compiler import GET_OBJECT, PUT_OBJECT, CompileError
from batchwright_cdk import BatchEnvironment, FlowStateMachine, QueueSpec
from batchwright_cdk.flow import ARN_OUTPUT_SUFFIX, NAME_OUTPUT_SUFFIX, OUTPUT_PREFIX

pytestmark = pytest.mark.cdk

FLOWS = Path(__file__).resolve().parents[1] / "stepfunctions" / "flows"
STACK = "FlowStack"
REGION = "us-east-1"
#: The sample app's small on-demand queue.
QUEUES = [QueueSpec.on_demand("small", instance_types=["c5.xlarge"], max_vcpus=16)]
IMAGE = "public.ecr.aws/docker/library/python:3.11-slim"
_GETATT = re.compile(r"^<GetAtt:([A-Za-z0-9]+)\.[A-Za-z]+>$")


@dataclass(frozen=True)
class Synthesis:
    outdir: Path
    template: dict[str, Any]
    nag_failure: str | None
    report: dict[str, Any] | None
    production: FlowStateMachine
    scheduled: FlowStateMachine

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template["Resources"])

    def logical_id(self, construct: Any) -> str:
        return str(cdk.Stack.of(construct).get_logical_id(construct.node.default_child))


def _stack(app: cdk.App | None = None) -> tuple[cdk.Stack, BatchEnvironment]:
    stack = cdk.Stack(app or cdk.App(), STACK, env=cdk.Environment(region=REGION))
    environment = BatchEnvironment(stack, "Environment", queues=QUEUES, default_image=IMAGE)
    return stack, environment


@pytest.fixture(scope="module")
def synthesis() -> Synthesis:
    from cdk_nag import AwsSolutionsChecks

    outdir = Path(tempfile.mkdtemp(prefix="batchwright-flow-out-"))
    app = cdk.App(outdir=str(outdir))
    stack, environment = _stack(app)
    production = FlowStateMachine(
        stack,
        "Production",
        environment=environment,
        flow=str(FLOWS / "production_flow.py"),
        user="ci",
        tags=["team:ml"],
    )
    scheduled = FlowStateMachine(
        stack, "Scheduled", environment=environment, flow=str(FLOWS / "scheduled_flow.py")
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    failure: str | None = None
    try:
        app.synth()
    except Exception as error:  # jsii surfaces a validation failure as RuntimeError
        failure = str(error)
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    template = json.loads((outdir / f"{STACK}.template.json").read_text())
    return Synthesis(outdir, template, failure, report, production, scheduled)


@pytest.fixture(scope="module")
def template(synthesis: Synthesis) -> Template:
    return Template.from_json(synthesis.template, skip_cyclical_dependencies_check=True)


def _document(synthesis: Synthesis, flow: FlowStateMachine) -> dict[str, Any]:
    """The flow's ASL document as deployed, deploy-time values as ``<Ref:...>``."""
    machine = synthesis.resources[synthesis.logical_id(flow.state_machine)]
    return dict(json.loads(render_intrinsics(machine["Properties"]["DefinitionString"])))


def _states(states: dict[str, Any]) -> dict[str, Any]:
    found = dict(states)
    for state in states.values():
        for branch in state.get("Branches", ()):
            found.update(_states(branch["States"]))
    return found


def _role_statements(synthesis: Synthesis, flow: FlowStateMachine) -> list[dict[str, Any]]:
    role = synthesis.logical_id(flow.role)
    return [
        statement
        for resource in synthesis.resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role} in resource["Properties"].get("Roles", [])
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


ACCOUNT = "123456789012"


class _Deployed(References):
    """Template values as they are once deployed: each job definition's ``Ref`` is the ARN
    of revision 7 of a name CloudFormation made up, each bucket is named after itself."""

    functions = frozenset({"Fn::Join", "Fn::Select", "Fn::Split"})

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION}
        if name in pseudo:
            return pseudo[name]
        return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{name}-Gx7Qk2:7"

    def get_att(self, logical_id: str, attribute: str) -> str:
        return f"arn:aws:s3:::{logical_id.lower()}" if attribute == "Arn" else logical_id

    def condition(self, name: str) -> bool:
        raise AssertionError(name)


def _deployed(value: Any) -> Any:
    return evaluate(value, _Deployed())


def _allows(statement: dict[str, Any], arn: str) -> bool:
    """Whether one of the statement's resources, as deployed, matches ``arn``."""
    return any(fnmatch.fnmatchcase(arn, _deployed(r)) for r in _listed(statement["Resource"]))


def _object_keys(synthesis: Synthesis, flow: FlowStateMachine, resource: str) -> list[str]:
    """The keys the ``resource`` states of the flow name for execution ``run-1``."""
    keys = []
    for state in _states(_document(synthesis, flow)["States"]).values():
        if state.get("Resource") == resource:
            template = state["Parameters"]["Key.$"]
            match = re.fullmatch(r"States\.Format\('(.*)', \$\$\.Execution\.Name\)", template)
            assert match, template
            keys.append(match.group(1).replace("{}", "run-1"))
    return keys


# --- the state machine ------------------------------------------------------------------


def test_one_state_machine_per_flow_with_the_steps_and_a_parallel(
    synthesis: Synthesis, template: Template
) -> None:
    template.resource_count_is("AWS::StepFunctions::StateMachine", 2)
    document = _document(synthesis, synthesis.production)
    states = _states(document["States"])
    for step in ("start", "left", "right", "join_sides", "square", "gather", "end"):
        assert states[step]["Type"] == "Task"
        assert states[step]["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    assert [s["Type"] for s in document["States"].values()].count("Parallel") == 1
    assert states["square"]["Parameters"]["ArrayProperties"] == {
        "Size.$": "$.batchwright.foreach.join_sides.size"
    }
    size = states["join_sides.size"]["Parameters"]
    bucket = size["Bucket"]
    assert _GETATT.match(bucket) is None and bucket.startswith("<Ref:EnvironmentDatastore"), bucket
    assert "placeholder" not in json.dumps(document)
    # The queue is the environment's, every job definition is a resource of the stack.
    queue = states["start"]["Parameters"]["JobQueue"]
    assert _GETATT.match(queue) and "small" in queue
    definitions = {
        r for r, v in synthesis.resources.items() if v["Type"] == "AWS::Batch::JobDefinition"
    }
    for state in states.values():
        if state.get("Resource", "").startswith("arn:aws:states:::batch"):
            reference = state["Parameters"]["JobDefinition"]
            assert reference.removeprefix("<Ref:").removesuffix(">") in definitions


def test_tasks_download_the_code_package_asset(synthesis: Synthesis) -> None:
    document = _document(synthesis, synthesis.production)
    command = _states(document["States"])["start"]["Parameters"]["ContainerOverrides"]["Command"]
    url, digest = command[3], command[4]
    asset = synthesis.production.code_package
    assert url == f"s3://cdk-hnb659fds-assets-<Ref:AWS::AccountId>-{REGION}/{asset.asset_hash}.gz"
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    manifest = json.loads((synthesis.outdir / f"{STACK}.assets.json").read_text())
    source = manifest["files"][asset.asset_hash]["source"]
    assert source["packaging"] == "file"
    staged = synthesis.outdir / source["path"]
    assert staged.name.endswith(".tar.gz")
    assert hashlib.sha256(staged.read_bytes()).hexdigest() == digest


def test_jobs_get_the_deployers_user_and_tags(synthesis: Synthesis) -> None:
    document = _document(synthesis, synthesis.production)
    start = _states(document["States"])["start"]["Parameters"]["ContainerOverrides"]
    variables = {v["Name"]: v.get("Value", v.get("Value.$")) for v in start["Environment"]}
    assert variables["BATCHWRIGHT_USER"] == "ci"
    assert json.loads(variables["BATCHWRIGHT_TAGS"]) == ["team:ml"]


def test_execution_logs_go_to_a_log_group_at_level_all(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": False,
                "Destinations": [
                    {
                        "CloudWatchLogsLogGroup": {
                            "LogGroupArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}
                        }
                    }
                ],
            }
        },
    )


# --- job definitions ----------------------------------------------------------------------


def test_one_job_definition_per_distinct_definition_without_a_fixed_name(
    synthesis: Synthesis,
) -> None:
    production = synthesis.production
    assert len(production.job_definitions) == len(production.compiled.job_definitions)
    for step, resource in production.job_definitions.items():
        props = synthesis.resources[cdk.Stack.of(resource).get_logical_id(resource)]["Properties"]
        assert "JobDefinitionName" not in props, step
        hashes = {r.content_hash for r in production.compiled.job_definitions.values()}
        assert props["Tags"]["batchwright:content-hash"] in hashes
        assert props["Type"] == "container"
        assert props["RetryStrategy"]["EvaluateOnExit"][-1] == {"Action": "EXIT", "OnReason": "*"}
        assert props["ResourceRetentionPolicy"] == {"SkipDeregisterOnUpdate": True}
        container = props["ContainerProperties"]
        assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == "batchwright"
        assert container["JobRoleArn"]["Fn::GetAtt"][0].startswith("EnvironmentJobRole")
    total = sum(
        len(f.compiled.job_definitions) for f in (synthesis.production, synthesis.scheduled)
    )
    kinds = [r["Type"] for r in synthesis.resources.values()]
    assert kinds.count("AWS::Batch::JobDefinition") == total
    # The scheduled flow's steps differ by @timeout, the job definition's attempt duration.
    scheduled = synthesis.scheduled.job_definitions
    assert sorted(scheduled) == ["end", "start"]
    durations = {
        step: synthesis.resources[cdk.Stack.of(r).get_logical_id(r)]["Properties"].get("Timeout")
        for step, r in scheduled.items()
    }
    assert durations["start"] is None
    assert durations["end"]["AttemptDurationSeconds"] >= 600


# --- IAM ------------------------------------------------------------------------------------


def test_submit_job_names_exactly_the_queues_and_definitions(synthesis: Synthesis) -> None:
    production = synthesis.production
    statements = _role_statements(synthesis, production)
    submit = [s for s in statements if "batch:SubmitJob" in _listed(s["Action"])]
    unconditioned = [s for s in submit if "Condition" not in s]
    assert len(unconditioned) == 1
    resources = [render_intrinsics(r) for r in _listed(unconditioned[0]["Resource"])]
    queues = {r for r in resources if r.startswith("<GetAtt:Environmentsmall")}
    assert len(queues) == 1
    # Each definition by its name (split out of its Ref), every revision of it.
    definitions = [_deployed(r) for r in _listed(unconditioned[0]["Resource"])][1:]
    assert len(definitions) == len(resources) - 1
    assert definitions == [
        f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/"
        f"{cdk.Stack.of(r).get_logical_id(r)}-Gx7Qk2:*"
        for r in production.job_definitions.values()
    ]
    # Submitting also authorizes (and tags) the job it creates: only jobs with the run tag.
    (tagged,) = [s for s in submit if "Condition" in s]
    assert render_intrinsics(tagged["Resource"]).endswith(":job/*")
    assert tagged["Condition"] == {"Null": {"aws:RequestTag/batchwright:run": "false"}}


def test_a_redeploy_leaves_running_executions_their_job_definition_revisions(
    synthesis: Synthesis,
) -> None:
    """An execution started before a deploy submits to the revisions its definition
    names: the update keeps them ACTIVE and the role still allows them."""
    for flow in (synthesis.production, synthesis.scheduled):
        statements = _role_statements(synthesis, flow)
        (submit,) = [s for s in statements if s.get("Sid") == "SubmitFlowJobs"]
        for resource in flow.job_definitions.values():
            name = f"{cdk.Stack.of(resource).get_logical_id(resource)}-Gx7Qk2"
            arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{name}"
            for revision in (1, 6, 7, 8):
                assert _allows(submit, f"{arn}:{revision}"), (name, revision)
            assert not _allows(submit, f"{arn}x:7")  # another name
            assert not _allows(submit, f"{arn}:7".replace(REGION, "eu-west-1"))
            props = synthesis.resources[cdk.Stack.of(resource).get_logical_id(resource)]
            assert props["Properties"]["ResourceRetentionPolicy"] == {
                "SkipDeregisterOnUpdate": True
            }
        # Nothing else of the flow's: no other flow's definitions, no job-definition/*.
        other = synthesis.scheduled if flow is synthesis.production else synthesis.production
        for resource in other.job_definitions.values():
            name = f"{cdk.Stack.of(resource).get_logical_id(resource)}-Gx7Qk2"
            assert not _allows(submit, f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{name}:1")


def test_the_states_may_write_their_records_and_read_array_sizes(synthesis: Synthesis) -> None:
    """Every key a putObject / getObject state names for a run is allowed, and no more:
    puts only under the run's ``_deployment`` folder."""
    for flow in (synthesis.production, synthesis.scheduled):
        statements = _role_statements(synthesis, flow)
        (write,) = [s for s in statements if s.get("Sid") == "WriteDeploymentRecords"]
        assert write["Action"] == "s3:PutObject"
        assert render_intrinsics(write["Resource"]).endswith(
            f"/batchwright/{flow.flow_name}/runs/*/_deployment/*"
        )
        bucket = _deployed(write["Resource"]).split("/", 1)[0]
        puts = _object_keys(synthesis, flow, PUT_OBJECT)
        # The parameters before start, and one record before each step's Fail state.
        assert f"batchwright/{flow.flow_name}/runs/run-1/_deployment/parameters.json" in puts
        for step in flow.definition.decorators:
            key = f"batchwright/{flow.flow_name}/runs/run-1/_deployment/failed-{step}.json"
            assert key in puts, step
        for key in puts:
            assert _allows(write, f"{bucket}/{key}"), key
        for key in (
            f"batchwright/{flow.flow_name}/runs/run-1/start/0/data.json",
            f"batchwright/{flow.flow_name}/_deployment/parameters.json",
            f"batchwright/Other{flow.flow_name}/runs/run-1/_deployment/parameters.json",
        ):
            assert not _allows(write, f"{bucket}/{key}"), key
        # No KMS statement for the S3-managed encryption of the created bucket.
        assert not any(a.startswith("kms:") for s in statements for a in _listed(s["Action"]))
    production = _role_statements(synthesis, synthesis.production)
    (read,) = [s for s in production if s.get("Sid") == "ReadArraySizes"]
    bucket = _deployed(read["Resource"]).split("/", 1)[0]
    gets = _object_keys(synthesis, synthesis.production, GET_OBJECT)
    assert gets
    for key in gets:
        assert _allows(read, f"{bucket}/{key}"), key


def test_a_bucket_with_a_key_lets_the_states_encrypt_and_decrypt() -> None:
    from aws_cdk import aws_s3 as s3

    stack = cdk.Stack(cdk.App(), STACK, env=cdk.Environment(region=REGION))
    bucket = s3.Bucket(stack, "Brought", encryption=s3.BucketEncryption.KMS)
    environment = BatchEnvironment(
        stack,
        "Environment",
        queues=QUEUES,
        default_image=IMAGE,
        bucket=bucket,
        datastore_prefix="/flows/",
    )
    flow = FlowStateMachine(
        stack, "Production", environment=environment, flow=str(FLOWS / "production_flow.py")
    )
    assert bucket.encryption_key is not None
    key = stack.resolve(bucket.encryption_key.key_arn)
    role = {"Ref": stack.get_logical_id(flow.role.node.default_child)}  # type: ignore[arg-type]
    template = Template.from_stack(stack).to_json()
    statements = {
        statement.get("Sid"): statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy" and role in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    }
    # A put needs a data key; a get, to decrypt it.
    assert statements["EncryptDeploymentRecords"]["Action"] == "kms:GenerateDataKey"
    assert statements["EncryptDeploymentRecords"]["Resource"] == key
    assert statements["DecryptArraySizes"]["Action"] == "kms:Decrypt"
    assert statements["DecryptArraySizes"]["Resource"] == key
    write = render_intrinsics(statements["WriteDeploymentRecords"]["Resource"])
    assert write.endswith("/flows/ProductionFlow/runs/*/_deployment/*")


def test_the_role_does_nothing_else(synthesis: Synthesis) -> None:
    statements = _role_statements(synthesis, synthesis.production)
    actions = {a for s in statements for a in _listed(s["Action"])}
    assert {a for a in actions if not a.startswith("logs:")} == {
        "batch:SubmitJob",
        "batch:TagResource",
        "batch:DescribeJobs",
        "batch:TerminateJob",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
        "s3:GetObject",
        "s3:PutObject",
    }
    events = next(s for s in statements if "events:PutRule" in _listed(s["Action"]))
    assert render_intrinsics(events["Resource"]).endswith(
        ":rule/StepFunctionsGetEventsForBatchJobsRule"
    )
    read = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert render_intrinsics(read["Resource"]).endswith("/batchwright/ProductionFlow/runs/*")
    terminate = next(s for s in statements if s["Action"] == "batch:TerminateJob")
    assert terminate["Condition"] == {"Null": {"aws:ResourceTag/batchwright:run": "false"}}
    # Without a foreach there is nothing to read from the datastore.
    scheduled = _role_statements(synthesis, synthesis.scheduled)
    assert not any(s["Action"] == "s3:GetObject" for s in scheduled)


def test_the_job_role_may_read_exactly_the_code_package(synthesis: Synthesis) -> None:
    production = synthesis.production
    policy = synthesis.resources[
        synthesis.logical_id(production.node.find_child("CodePackageAccess"))
    ]
    job_role = cdk.Stack.of(production).get_logical_id(
        production.environment.job_role.node.default_child  # type: ignore[attr-defined]
    )
    assert policy["Properties"]["Roles"] == [{"Ref": job_role}]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:GetObject"
    key = production.code_package.asset_hash
    assert render_intrinsics(statement["Resource"]).endswith(
        f":s3:::cdk-hnb659fds-assets-<Ref:AWS::AccountId>-{REGION}/{key}.gz"
    )


# --- schedule and outputs -----------------------------------------------------------------


def test_a_flow_with_schedule_gets_a_schedule(synthesis: Synthesis, template: Template) -> None:
    template.resource_count_is("AWS::Scheduler::Schedule", 1)
    (schedule,) = (
        r for r in synthesis.resources.values() if r["Type"] == "AWS::Scheduler::Schedule"
    )
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(30 6 * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "Europe/Berlin"
    target = props["Target"]
    assert target["Arn"] == {"Ref": synthesis.logical_id(synthesis.scheduled.state_machine)}
    assert json.loads(target["Input"]) == {"Parameters": {}}
    assert synthesis.production.schedule is None


def test_schedule_false_deploys_without_it() -> None:
    stack, environment = _stack()
    FlowStateMachine(
        stack,
        "Scheduled",
        environment=environment,
        flow=str(FLOWS / "scheduled_flow.py"),
        schedule=False,
    )
    Template.from_stack(stack).resource_count_is("AWS::Scheduler::Schedule", 0)


def test_each_flow_is_published_by_name(synthesis: Synthesis) -> None:
    outputs = synthesis.template["Outputs"]
    for flow in (synthesis.production, synthesis.scheduled):
        machine = synthesis.logical_id(flow.state_machine)
        arn = outputs[f"{OUTPUT_PREFIX}{flow.flow_name}{ARN_OUTPUT_SUFFIX}"]
        assert arn["Value"] == {"Ref": machine}
        name = outputs[f"{OUTPUT_PREFIX}{flow.flow_name}{NAME_OUTPUT_SUFFIX}"]
        assert name["Value"] == {"Fn::GetAtt": [machine, "Name"]}
        assert "StateMachineName" not in synthesis.resources[machine]["Properties"]


def test_the_environments_descriptor_lists_the_flows_deployed_next_to_it(
    synthesis: Synthesis,
) -> None:
    """What ``step-functions trigger`` reads to find a state machine CloudFormation named."""
    document = synthesis.template["Outputs"][DESCRIPTOR_OUTPUT_KEY]["Value"]
    descriptor = json.loads(render_intrinsics(document))
    assert descriptor["flows"] == {
        flow.flow_name: f"<Ref:{synthesis.logical_id(flow.state_machine)}>"
        for flow in (synthesis.production, synthesis.scheduled)
    }


# --- steps without @batch ------------------------------------------------------------------


def test_steps_without_batch_are_promoted_once(synthesis: Synthesis) -> None:
    scheduled = synthesis.scheduled
    assert scheduled.definition.with_options == ("batch",)
    for step, decorators in scheduled.definition.decorators.items():
        assert [d.name for d in decorators].count("batch") == 1, step
    # A flow whose steps all have @batch is left as written.
    assert synthesis.production.definition.with_options == ()


def test_promote_steps_false_refuses_a_step_without_batch() -> None:
    stack, environment = _stack()
    with pytest.raises(CompileError, match=r"step 'start'.*runs locally"):
        FlowStateMachine(
            stack,
            "Scheduled",
            environment=environment,
            flow=str(FLOWS / "scheduled_flow.py"),
            promote_steps=False,
        )


# --- refusals -------------------------------------------------------------------------------


def test_a_nested_foreach_is_refused_at_synth_naming_the_step() -> None:
    stack, environment = _stack()
    with pytest.raises(CompileError) as refused:
        FlowStateMachine(
            stack,
            "Nested",
            environment=environment,
            flow=str(FLOWS / "nested_foreach_flow.py"),
        )
    message = str(refused.value)
    assert "flow NestedForeachFlow, step 'by_color'" in message
    assert "foreach inside a foreach" in message
    assert "Flatten the items into one foreach" in message


def test_a_missing_flow_file_is_refused() -> None:
    from batchwright.errors import UserInputError

    stack, environment = _stack()
    with pytest.raises(UserInputError, match="no flow file"):
        FlowStateMachine(stack, "Missing", environment=environment, flow="no/such/flow.py")


# --- cfn-lint and cdk-nag -------------------------------------------------------------------


def test_the_stack_passes_cfn_lint(synthesis: Synthesis) -> None:
    from cfnlint.api import lint  # type: ignore[import-untyped]

    text = (synthesis.outdir / f"{STACK}.template.json").read_text()
    matches = lint(text, regions=[REGION])
    problems = [
        f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id[0] in ("E", "W")
    ]
    assert problems == []


def test_the_stack_passes_cdk_nag_aws_solutions(synthesis: Synthesis) -> None:
    violations = []
    for plugin in (synthesis.report or {}).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            where = [c.get("constructPath") for c in violation.get("violatingConstructs", [])]
            violations.append(f"{violation['ruleName']} {where}")
    assert synthesis.nag_failure is None, f"{violations}\n{synthesis.nag_failure}"
    assert violations == []


def test_every_flow_acknowledgment_names_its_reason(synthesis: Synthesis) -> None:
    metadata = json.loads((synthesis.outdir / f"{STACK}.metadata.json").read_text())
    acknowledged: dict[str, str] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules" and (
                "/Production" in path or "/Scheduled" in path
            ):
                acknowledged.update(entry["data"])
    nag = {rule: reason for rule, reason in acknowledged.items() if "AwsSolutions-" in rule}
    assert any("AwsSolutions-SF2" in rule for rule in nag)
    assert any("AwsSolutions-IAM5[" in rule for rule in nag)
    for rule, reason in nag.items():
        assert isinstance(reason, str) and len(reason.split()) >= 6, (rule, reason)


# --- the sample app -------------------------------------------------------------------------


def test_the_production_sample_app_deploys_its_daily_flow() -> None:
    import importlib.util

    from cfnlint.api import lint

    path = Path(__file__).resolve().parents[2] / "sample_app" / "production_app.py"
    spec = importlib.util.spec_from_file_location("batchwright_production_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cwd = Path.cwd()
    try:
        os.chdir(path.parents[1])  # the flow's path is relative to the repository root
        assembly = module.build_app(cdk.App()).synth()
    finally:
        os.chdir(cwd)
    template = assembly.get_stack_by_name(module.STACK_NAME).template
    kinds = [r["Type"] for r in template["Resources"].values()]
    assert kinds.count("AWS::StepFunctions::StateMachine") == 1
    (schedule,) = (
        r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"
    )
    assert schedule["Properties"]["ScheduleExpression"] == "cron(0 0 * * ? *)"
    assert "BatchwrightFlowDailyReportFlowStateMachineArn" in template["Outputs"]
    matches = lint(json.dumps(template), regions=[REGION])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id[0] in ("E", "W")] == []


def test_an_environment_without_a_descriptor_is_refused() -> None:
    from batchwright_cdk import EnvironmentConfigError, ImportedBatchEnvironment

    stack = cdk.Stack(cdk.App(), STACK, env=cdk.Environment(region=REGION))
    imported = ImportedBatchEnvironment.from_environment_attributes(
        stack,
        "Imported",
        environment_name="Elsewhere",
        bucket_name="bucket",
        job_role_arn="arn:aws:iam::123456789012:role/job",
        execution_role_arn="arn:aws:iam::123456789012:role/execution",
        log_group_name="logs",
        queue_arns={"cpu": "arn:aws:batch:us-east-1:123456789012:job-queue/cpu"},
    )
    with pytest.raises(EnvironmentConfigError, match=r"environment.*descriptor\(\)"):
        FlowStateMachine(
            stack,
            "Production",
            environment=imported,  # type: ignore[arg-type]
            flow=str(FLOWS / "production_flow.py"),
        )


def test_the_deployed_documents_are_valid_asl(synthesis: Synthesis) -> None:
    from tests.contract.asl import asl_problems

    for flow in (synthesis.production, synthesis.scheduled):
        assert asl_problems(_document(synthesis, flow)) == [], flow.flow_name
