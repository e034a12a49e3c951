"""The plan of flows on the synthesized sample environment (cdk.out only), its refusals, and
the live check against moto's in-process Batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchwright.costs import price_table
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.plan import Plan, live_check, make_plan

from .conftest import FLOWS, REPO, decorators_of

PAIRING_FLOW = REPO / "sample_app" / "flows" / "pairing_flow.py"


def _plan(flow: Path, env: EnvironmentDescriptor | None, **kwargs: Any) -> Plan:
    name, decorators = decorators_of(flow)
    return make_plan(name, decorators, env, **kwargs)


# --- the sample pairing flow ---------------------------------------------------------------------


def test_pairing_flow_routes_each_step_to_its_queue(sample_env: EnvironmentDescriptor) -> None:
    plan = _plan(PAIRING_FLOW, sample_env)
    assert plan.ok, plan.refusals
    assert [s.step for s in plan.steps] == [
        "start",
        "featurize",
        "train",
        "export",
        "score",
        "end",
    ]
    assert [s.backend for s in plan.steps] == ["local", "batch", "batch", "batch", "batch", "local"]
    routed = {s.step: (s.queue_key, s.platform) for s in plan.batch_steps}
    assert routed == {
        "featurize": ("cpu", "EC2"),
        "train": ("spot", "SPOT"),
        "export": ("fargate", "FARGATE"),
        "score": ("gpu", "EC2"),
    }
    # Each step's queue is the environment's queue, by ARN, and its target carries the
    # environment's roles, image and log group: nothing configured by hand.
    for step in plan.batch_steps:
        assert step.queue_key is not None
        queue = sample_env.queue(step.queue_key)
        assert queue is not None and step.queue == queue.arn
        assert step.target is not None and step.target.queue == queue.arn
        assert step.target.job_role_arn == sample_env.job_role_arn
        shape = step.job_definition_shape()
        assert shape is not None and shape["image"] == sample_env.default_image
    assert "@retry" in plan.step("train").reason
    # The Spot step moves to an on-demand CPU queue after reclaims; the others stay put.
    train = plan.step("train")
    assert train.on_demand_queue_key in ("cpu", "small")
    assert train.policy.batch is not None and train.policy.batch.on_demand is not None
    on_demand = sample_env.queue(train.on_demand_queue_key or "")
    assert on_demand is not None and train.policy.batch.on_demand.queue == on_demand.arn
    assert train.policy.batch.reclaims_before_on_demand == 2
    assert {s.step for s in plan.batch_steps if s.on_demand_queue_key} == {"train"}
    assert plan.step("score").instance_types[0] == "g5.xlarge"
    score = plan.step("score").job_definition_shape()
    assert score is not None and (score["gpu"], score["memory_mib"]) == (1, 8192)
    export = plan.step("export").job_definition_shape()
    assert export is not None
    assert export["platform_capabilities"] == ["FARGATE"]
    assert export["ephemeral_storage_gib"] == 30
    assert export["execution_role"] == sample_env.execution_role_arn


def test_plan_json_has_the_documented_fields(sample_env: EnvironmentDescriptor) -> None:
    rows = _plan(PAIRING_FLOW, sample_env).to_json()
    required = {"step", "backend", "queue", "platform", "instance_types", "verdict"}
    for row in rows:
        assert required <= set(row)
        assert {"reason", "job_definition", "notices"} <= set(row)
    by_step = {row["step"]: row for row in rows}
    assert by_step["start"]["backend"] == "local" and by_step["start"]["queue"] is None
    assert by_step["featurize"]["verdict"] == "ok"
    assert by_step["featurize"]["instance_types"][0] == "m5.large"
    assert by_step["export"]["instance_types"] == ["fargate:1vcpu-2048mib"]


def test_plan_estimates_each_batch_steps_cost_per_hour(sample_env: EnvironmentDescriptor) -> None:
    plan = _plan(PAIRING_FLOW, sample_env)
    featurize = plan.step("featurize")
    assert featurize.resources is not None and featurize.instance_types[0] == "m5.large"
    vcpus, memory, _ = featurize.resources
    table = price_table()
    region = sample_env.region if sample_env.region in table.regions() else "us-east-1"
    price = table.price(region, "m5.large")
    assert price is not None
    # m5.large has 2 vCPUs and 8192 MiB: the task pays the larger of its two shares.
    share = max(float(vcpus) / 2, memory / 8192)
    cost = featurize.cost
    assert cost is not None and cost.usd_per_hour == pytest.approx(share * price)
    assert not cost.spot
    by_step = {row["step"]: row for row in plan.to_json()}
    assert by_step["featurize"]["usd_per_hour"] == pytest.approx(share * price, abs=1e-6)
    assert by_step["start"]["usd_per_hour"] is None  # runs locally
    # Fargate steps are priced per vCPU and GB; Spot steps are labelled estimates.
    export = plan.step("export").cost
    assert export is not None and "Fargate" in export.basis
    assert plan.step("train").cost is not None and plan.step("train").cost.spot  # type: ignore[union-attr]


def test_without_an_environment_batch_steps_are_refused(sample_env: EnvironmentDescriptor) -> None:
    plan = _plan(PAIRING_FLOW, None)
    assert not plan.ok
    assert len(plan.refusals) == 4
    message = plan.step("train").verdict
    assert "flow 'PairingFlow', step 'train', @batch" in message
    assert "--environment NAME" in message and "@batch(queue=...)" in message
    # --run-batch-locally plans them anyway: they run on this machine.
    assert _plan(PAIRING_FLOW, None, run_batch_locally=True).ok


# --- refusals, before any API call ------------------------------------------------------------


@pytest.fixture(scope="module")
def refused(sample_env: EnvironmentDescriptor) -> Plan:
    return _plan(FLOWS / "refusal_flow.py", sample_env)


def test_every_refusal_is_one_message_per_step(refused: Plan) -> None:
    assert not refused.ok
    assert [s.step for s in refused.steps if not s.ok] == [
        "too_much_memory",
        "too_many_gpus",
        "neuron_on_gpu_queue",
        "efa_on_spot",
        "fargate_too_big",
        "storage_on_ec2",
    ]
    assert refused.step("start").ok and refused.step("end").ok
    assert len(refused.refusals) == 6


def test_memory_beyond_the_queue_after_the_ecs_reserve(refused: Plan) -> None:
    message = refused.step("too_much_memory").verdict
    assert "step 'too_much_memory', @batch: queue='small'" in message
    assert "8192 MiB" in message and "c5.xlarge" in message
    assert "drop queue=" in message


def test_a_gpu_count_no_instance_has(refused: Plan) -> None:
    message = refused.step("too_many_gpus").verdict
    assert "16 GPU" in message and "4 GPU" in message and "g5.12xlarge" in message


def test_neuron_on_a_queue_without_neuron(refused: Plan) -> None:
    message = refused.step("neuron_on_gpu_queue").verdict
    assert "queue='gpu'" in message and "Neuron" in message
    assert "Queues that could take it: neuron" in message


def test_neuron_on_an_environment_without_neuron(sample_env: EnvironmentDescriptor) -> None:
    assert _plan(FLOWS / "routing_flow.py", sample_env).step("neuron").queue_key == "neuron"
    without = dataclasses.replace(
        sample_env, queues=tuple(q for q in sample_env.queues if q.accelerator != "neuron")
    )
    message = _plan(FLOWS / "routing_flow.py", without).step("neuron").verdict
    assert "step 'neuron', @batch: needs a neuron queue" in message
    assert f"environment '{sample_env.name}' has none" in message


def test_efa_on_a_spot_queue(refused: Plan) -> None:
    message = refused.step("efa_on_spot").verdict
    assert "queue 'spot' is a Spot queue" in message and "on-demand" in message


def test_fargate_beyond_the_largest_pair(refused: Plan) -> None:
    message = refused.step("fargate_too_big").verdict
    assert "16 vCPU / 131072 MiB" in message
    assert "16 vCPU / 122880 MiB" in message


def test_platform_refusal_from_the_job_spec(refused: Plan) -> None:
    message = refused.step("storage_on_ec2").verdict
    assert "ephemeral_storage=30 is Fargate only" in message
    assert "Remove ephemeral_storage" in message


def test_fargate_sizes_between_pairs_are_rounded_with_a_notice(
    sample_env: EnvironmentDescriptor,
) -> None:
    step = _plan(FLOWS / "routing_flow.py", sample_env).step("odd_fargate")
    assert step.ok and step.platform == "FARGATE"
    assert step.resources == ("1", 3072, 0)
    assert any("rounded up to 1 vCPU / 3072 MiB" in n for n in step.notices)


# --- the live check ------------------------------------------------------------------------------


class CountingClient:
    """A real (moto) Batch client that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)

        return call


@pytest.fixture
def batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """moto's in-process Batch (no Docker) with an IAM service role, plus an EC2 client."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"batch": {"use_docker": False}}):
        session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        yield session.client("batch"), session


def _role(session: Any, name: str) -> str:
    iam = session.client("iam")
    arn: str = iam.create_role(RoleName=f"{name}-service", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    return arn


def _queue(client: Any, name: str, ce_arn: str, state: str = "ENABLED") -> str:
    arn: str = client.create_job_queue(
        jobQueueName=name,
        state=state,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}],
    )["jobQueueArn"]
    return arn


def _unmanaged(client: Any, session: Any, name: str, state: str = "ENABLED") -> str:
    arn: str = client.create_compute_environment(
        computeEnvironmentName=name, type="UNMANAGED", state=state, serviceRole=_role(session, name)
    )["computeEnvironmentArn"]
    return arn


def _fargate(client: Any, session: Any, name: str) -> str:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    arn: str = client.create_compute_environment(
        computeEnvironmentName=name,
        type="MANAGED",
        state="ENABLED",
        serviceRole=_role(session, name),
        computeResources={
            "type": "FARGATE",
            "maxvCpus": 16,
            "subnets": [subnet],
            "securityGroupIds": [group],
        },
    )["computeEnvironmentArn"]
    return arn


def test_a_disabled_queue_is_refused_with_one_describe_call(
    batch: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    client, session = batch
    disabled = _queue(client, "sample-cpu", _unmanaged(client, session, "cpu-ce"), "DISABLED")
    enabled = _queue(client, "sample-gpu", _unmanaged(client, session, "gpu-ce"))
    deployed = {"cpu": disabled, "gpu": enabled}
    # The sample environment as if deployed: the cpu and gpu queues exist in "AWS".
    env = dataclasses.replace(
        sample_env,
        queues=tuple(
            dataclasses.replace(q, arn=deployed.get(q.key, q.arn)) for q in sample_env.queues
        ),
    )
    plan = _plan(PAIRING_FLOW, env)
    assert plan.ok
    counting = CountingClient(client)
    checked = live_check(plan, counting)
    assert counting.calls == ["describe_job_queues", "describe_compute_environments"]
    assert checked.live_checked
    message = checked.step("featurize").verdict
    assert "step 'featurize', @batch: queue 'sample-cpu' is DISABLED/VALID" in message
    assert "--state ENABLED" in message
    assert checked.step("score").ok
    # Queues that were never deployed (placeholder ARNs) are refused as missing.
    assert "does not exist" in checked.step("train").verdict


def test_a_queue_whose_compute_environments_are_disabled(batch: tuple[Any, Any]) -> None:
    client, session = batch
    _queue(client, "outside-queue", _unmanaged(client, session, "off-ce", state="DISABLED"))
    checked = live_check(_plan(FLOWS / "outside_flow.py", None), client)
    message = checked.step("elsewhere").verdict
    assert "queue 'outside-queue' has no ENABLED and VALID compute environment" in message
    assert "off-ce DISABLED" in message


def test_a_queue_outside_the_environment_gets_its_platform_from_aws(
    batch: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    client, session = batch
    _queue(client, "outside-queue", _fargate(client, session, "fargate-ce"))
    plan = _plan(FLOWS / "outside_flow.py", sample_env)
    before = plan.step("elsewhere")
    assert before.ok and before.platform is None and before.target is None
    after = live_check(plan, client).step("elsewhere")
    assert after.ok, after.verdict
    assert after.platform == "FARGATE"
    assert after.target is not None and after.target.queue == "outside-queue"
    # The environment's defaults still apply to a queue it does not own.
    assert after.target.execution_role_arn == sample_env.execution_role_arn
    shape = after.job_definition_shape()
    assert shape is not None and shape["ephemeral_storage_gib"] == 30


def test_an_ec2_queue_outside_the_environment_refuses_fargate_options(
    batch: tuple[Any, Any],
) -> None:
    client, session = batch
    _queue(client, "outside-queue", _unmanaged(client, session, "ec2-ce"))
    after = live_check(_plan(FLOWS / "outside_flow.py", None), client).step("elsewhere")
    assert after.platform == "EC2"
    assert "ephemeral_storage=30 is Fargate only" in after.verdict
