"""Routing mistakes a new user makes, on an environment read as from cdk.out (placeholder
ARNs): a queue= that names no queue, fractional vCPUs, requests no queue can hold, and
what is still checked without an environment. Refusals are asserted in full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchwright.batch.options import BatchOptions
from batchwright.cli.command import FlowCommand, load_flow_file
from batchwright.console import Console
from batchwright.environment.descriptor import (
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)
from batchwright.environment.routing import check_anywhere, route
from batchwright.plan import Plan, make_plan


def _queue(
    key: str, platform: str, types: tuple[str, ...] = (), accelerator: str = "none"
) -> QueueDescription:
    logical = f"Environment{key.replace('-', '')}Queue1A2B3C4D"
    return QueueDescription(
        key=key,
        # As read from cdk.out before deployment: placeholders, never shown to users.
        name=f"<GetAtt:{logical}.JobQueueName>",
        arn=f"<GetAtt:{logical}.JobQueueArn>",
        platform=platform,  # type: ignore[arg-type]
        accelerator=accelerator,  # type: ignore[arg-type]
        compute_environments=(
            ComputeEnvironmentDescription(
                arn=f"<Ref:Environment{key.replace('-', '')}Ce>",
                platform=platform,  # type: ignore[arg-type]
                order=1,
                max_vcpus=256,
                instance_types=types,
                accelerator=accelerator,  # type: ignore[arg-type]
            ),
        ),
    )


ENV = EnvironmentDescriptor(
    name="Sample",
    region="us-east-1",
    bucket="<Ref:Bucket>",
    prefix="batchwright",
    job_role_arn="<GetAtt:JobRole.Arn>",
    execution_role_arn="<GetAtt:ExecutionRole.Arn>",
    log_group="<Ref:LogGroup>",
    default_image="public.ecr.aws/docker/library/python:3.12-slim",
    queues=(
        _queue("cpu", "EC2", ("c5.large", "c5.xlarge", "m5.4xlarge")),
        _queue("spot", "SPOT", ("c5.large", "c5.xlarge")),
        _queue("fargate", "FARGATE"),
        _queue("fargate-spot", "FARGATE_SPOT"),
        _queue("gpu", "EC2", ("g5.xlarge", "g5.12xlarge"), "gpu"),
        _queue("neuron", "EC2", ("inf2.xlarge",), "neuron"),
    ),
)
EC2_ONLY = EnvironmentDescriptor(**{**ENV.__dict__, "queues": ENV.queues[:2]})
QUEUES = "cpu, spot, fargate, fargate-spot, gpu, neuron"


def _options(**attributes: Any) -> BatchOptions:
    return BatchOptions.from_attributes("train", attributes)


# --- queue= names no queue of the environment ----------------------------------------------


@pytest.mark.parametrize(
    ("queue", "suggestion"),
    [
        ("cpus", "'cpu'"),
        ("gpu-large", "'gpu'"),
        ("GPU", "'gpu' or 'cpu'"),
        ("fargate_spot", "'fargate-spot', 'fargate' or 'spot'"),
        ("neuron-queue", "'neuron'"),
    ],
)
def test_a_queue_meant_as_a_key_but_naming_none_is_refused(queue: str, suggestion: str) -> None:
    refused = route(_options(queue=queue), ENV)
    assert not refused.ok and refused.queue is None and refused.queue_id is None
    assert refused.verdict == (
        f"step 'train', @batch: queue={queue!r} names no queue of environment 'Sample' (its "
        f"queues: {QUEUES}). Did you mean {suggestion}? Give one of the environment's queue "
        "keys, drop queue= to let batchwright route the step, or give the full ARN of a queue "
        "outside the environment."
    )


@pytest.mark.parametrize(
    "queue", ["team-batch-queue", "arn:aws:batch:us-east-1:123456789012:job-queue/gpu-large"]
)
def test_a_queue_outside_the_environment_is_left_to_the_live_check(queue: str) -> None:
    chosen = route(_options(queue=queue), ENV)
    assert chosen.ok and chosen.queue is None and chosen.queue_id == queue


def test_a_key_name_or_arn_of_the_environment_is_its_queue() -> None:
    fargate = ENV.queue("fargate")
    assert fargate is not None
    for value in ("fargate",):
        chosen = route(_options(queue=value), ENV)
        assert chosen.ok and chosen.queue is fargate


# --- fractional vCPUs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "size"), [(0.25, 512, "0.25vcpu-512mib"), (0.5, 1024, "0.5vcpu-1024mib")]
)
def test_fractional_cpu_without_a_queue_goes_to_fargate(cpu: float, memory: int, size: str) -> None:
    chosen = route(_options(cpu=cpu, memory=memory), ENV)
    assert chosen.ok, chosen.verdict
    assert chosen.queue is not None and chosen.queue.key == "fargate"
    assert chosen.instance_types == (f"fargate:{size}",)
    assert (
        chosen.reason == f"its options need FARGATE (cpu={cpu}); on-demand preferred without @retry"
    )


def test_fractional_cpu_with_retry_goes_to_fargate_spot() -> None:
    chosen = route(_options(cpu=0.5, memory=1024), ENV, has_retry=True)
    assert chosen.queue is not None and chosen.queue.key == "fargate-spot"


def test_fractional_cpu_without_a_fargate_queue_says_so() -> None:
    refused = route(_options(cpu=0.5), EC2_ONLY)
    assert refused.verdict == (
        "step 'train', @batch: needs a Fargate queue (for cpu=0.5), and environment 'Sample' "
        "has none (its queues: cpu (EC2), spot (SPOT)). Add such a queue to the environment, "
        "or use cpu=1 to run on EC2."
    )


def test_an_option_fargate_lacks_sends_the_step_to_ec2() -> None:
    chosen = route(_options(log_driver="syslog"), ENV)
    assert chosen.queue is not None and chosen.queue.key == "cpu"
    assert chosen.reason.startswith("its options need EC2 (log_driver='syslog')")


def test_an_accelerator_the_environment_lacks_names_the_option() -> None:
    refused = route(_options(efa=1), ENV)
    assert refused.verdict == (
        "step 'train', @batch: needs an efa queue (for efa=1), and environment 'Sample' has none "
        "(its queues: cpu (EC2), spot (SPOT), fargate (FARGATE), fargate-spot (FARGATE_SPOT), "
        "gpu (EC2, gpu), neuron (EC2, neuron)). Add an efa queue to the environment, or drop efa."
    )


def test_refusals_name_trainium_as_the_user_wrote_it() -> None:
    refused = route(_options(trainium=1), EC2_ONLY)
    assert refused.verdict == (
        "step 'train', @batch: needs a neuron queue (for trainium=1), and environment "
        "'Sample' has none (its queues: cpu (EC2), spot (SPOT)). Add a neuron queue to the "
        "environment, or drop trainium."
    )
    too_many = route(_options(trainium=64), ENV)
    assert "trainium" in too_many.verdict and "inferentia" not in too_many.verdict


# --- fit refusals: short, by key, with a table -----------------------------------------------


def test_a_request_no_queue_holds_gets_a_table_of_the_largest_offers() -> None:
    refused = route(_options(memory=200_000), ENV)
    assert refused.verdict == (
        "step 'train', @batch: 1 vCPU / 200000 MiB fits no queue that could run it. The "
        "largest request each takes:\n"
        "  queue         platform      largest request       instance type\n"
        "  cpu           EC2           16 vCPU / 62227 MiB   m5.4xlarge\n"
        "  spot          SPOT          4 vCPU / 7750 MiB     c5.xlarge\n"
        "  fargate       FARGATE       16 vCPU / 122880 MiB  (Fargate)\n"
        "  fargate-spot  FARGATE_SPOT  16 vCPU / 122880 MiB  (Fargate)\n"
        "Lower memory, or add a larger instance type to one of these queues."
    )
    assert "<" not in refused.verdict  # no placeholder of cdk.out


def test_a_gpu_request_shows_the_gpus_each_queue_offers() -> None:
    refused = route(_options(gpu=8), ENV)
    assert refused.verdict == (
        "step 'train', @batch: 1 vCPU / 4096 MiB / 8 GPU fits no queue that could run it. The "
        "largest request each takes:\n"
        "  queue  platform  largest request               instance type\n"
        "  gpu    EC2       48 vCPU / 186745 MiB / 4 GPU  g5.12xlarge\n"
        "Lower gpu, or add a larger instance type to one of these queues."
    )


def test_a_fargate_request_beyond_the_largest_size_offers_ec2() -> None:
    refused = route(_options(cpu=16, memory=131072, ephemeral_storage=50), ENV)
    assert refused.verdict == (
        "step 'train', @batch: 16 vCPU / 131072 MiB fits no queue that could run it. The "
        "largest request each takes:\n"
        "  queue         platform      largest request       instance type\n"
        "  fargate       FARGATE       16 vCPU / 122880 MiB  (Fargate)\n"
        "  fargate-spot  FARGATE_SPOT  16 vCPU / 122880 MiB  (Fargate)\n"
        "Lower memory, or drop ephemeral_storage to run on EC2."
    )


def test_a_named_queue_that_cannot_hold_the_request() -> None:
    refused = route(_options(memory=60_000, queue="spot"), ENV)
    assert refused.verdict == (
        "step 'train', @batch: queue='spot' can never run it (1 vCPU / 60000 MiB): the most it "
        "offers is 4 vCPU / 7750 MiB on c5.xlarge. Queues that could take it: cpu, fargate, "
        "fargate-spot; drop queue= to let batchwright route it."
    )
    alone = route(_options(memory=100_000, queue="cpu"), EC2_ONLY)
    assert alone.verdict == (
        "step 'train', @batch: queue='cpu' can never run it (1 vCPU / 100000 MiB): the most it "
        "offers is 16 vCPU / 62227 MiB on m5.4xlarge. No queue of environment 'Sample' can take "
        "it: lower memory."
    )


# --- without an environment -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"memory": 10**7},
            "memory=10000000 is more than any EC2 instance type AWS Batch runs offers a job (at "
            "most 1992262 MiB, on p5.48xlarge). Lower memory to at most 1992262.",
        ),
        (
            {"cpu": 400},
            "cpu=400 is more than any EC2 instance type AWS Batch runs offers a job (at most 192, "
            "on c7i.48xlarge). Lower cpu to at most 192.",
        ),
        (
            {"gpu": 9},
            "gpu=9 is more than any EC2 instance type AWS Batch runs offers a job (at most 8, on "
            "g4dn.metal). Lower gpu to at most 8.",
        ),
        (
            {"cpu": 0.5, "memory": 200_000},
            "memory=200000 exceeds Fargate's largest size (16 vCPU / 122880 MiB), and cpu=0.5 "
            "runs on Fargate only. Lower memory to at most 122880, or use cpu=1 to run on EC2.",
        ),
        (
            {"cpu": 32, "ephemeral_storage": 30},
            "cpu=32 exceeds Fargate's largest size (16 vCPU / 122880 MiB), and "
            "ephemeral_storage=30 runs on Fargate only. Lower cpu to at most 16, or drop "
            "ephemeral_storage to run on EC2.",
        ),
        (
            # Each fits some instance type (p5.48xlarge: 32 EFA), but none has both.
            {"inferentia": 1, "efa": 32},
            "no EC2 instance type AWS Batch runs offers 1 vCPU / 4096 MiB / 1 Neuron devices / "
            "32 EFA interfaces at once. Lower cpu, memory, inferentia or efa.",
        ),
    ],
)
def test_checks_that_need_no_environment(attributes: dict[str, Any], message: str) -> None:
    assert check_anywhere(_options(**attributes)) == f"step 'train', @batch: {message}"


@pytest.mark.parametrize(
    "attributes",
    [{"memory": 10**6}, {"cpu": 0.25, "memory": 512}, {"cpu": 16, "memory": 122880}, {"gpu": 8}],
)
def test_requests_some_instance_type_or_fargate_size_holds(attributes: dict[str, Any]) -> None:
    assert check_anywhere(_options(**attributes)) == ""


FLOW = """
from batchwright import FlowSpec, batch, step


class FirstHourFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @batch({attributes})
    @step
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FirstHourFlow()
"""


def _plan(
    tmp_path: Path, attributes: str, env: EnvironmentDescriptor | None, **kwargs: Any
) -> Plan:
    # A file per flow: a flow file is loaded once per path.
    path = tmp_path / f"first_hour_flow_{len(list(tmp_path.glob('*.py')))}.py"
    path.write_text(FLOW.format(attributes=attributes))
    command = FlowCommand(load_flow_file(str(path)), str(path), Console())
    return make_plan(command.flow_name, command.definition(()).decorators, env, **kwargs)


def test_without_an_environment_a_request_nothing_holds_is_refused(tmp_path: Path) -> None:
    for locally in (True, False):
        step = _plan(tmp_path, "memory=10**7", None, run_batch_locally=locally).step("work")
        assert step.verdict == (
            "step 'work', @batch: memory=10000000 is more than any EC2 instance type AWS Batch "
            "runs offers a job (at most 1992262 MiB, on p5.48xlarge). Lower memory to at most "
            "1992262."
        )


def test_without_an_environment_the_reason_says_what_was_not_checked(tmp_path: Path) -> None:
    step = _plan(tmp_path, "cpu=0.5, memory=1024", None, run_batch_locally=True).step("work")
    assert step.ok and step.queue is None
    assert step.reason == (
        "no environment: runs on the local backend (--run-batch-locally); checked: the options, "
        "their combinations, and that an instance type or Fargate size AWS Batch offers holds "
        "0.5 vCPU / 1024 MiB; its options need FARGATE (cpu=0.5); not checked without an "
        "environment: which queue takes it, that the queue exists, its platform, and the fit on "
        "its instance types"
    )
    named = _plan(tmp_path, "queue='team-queue'", None).step("work")
    assert named.ok and named.queue == "team-queue"
    assert named.reason == (
        "named by @batch(queue=...); no environment; checked: the options, their combinations, "
        "and that an instance type or Fargate size AWS Batch offers holds 1 vCPU / 4096 MiB; "
        "the queue and its platform are read from AWS before submitting; the fit on its "
        "instance types is not checked"
    )


def test_a_queue_outside_the_environment_still_gets_the_checks_without_one(
    tmp_path: Path,
) -> None:
    step = _plan(tmp_path, "queue='team-queue', gpu=9", ENV).step("work")
    assert step.verdict == (
        "step 'work', @batch: gpu=9 is more than any EC2 instance type AWS Batch runs offers a "
        "job (at most 8, on g4dn.metal). Lower gpu to at most 8."
    )
    local = _plan(tmp_path, "queue='team-queue'", ENV, run_batch_locally=True).step("work")
    assert local.ok
    assert local.reason.startswith("named by @batch(queue=...), not a queue of environment ")
    assert local.reason.endswith(
        "not checked: that the queue exists and its platform (--run-batch-locally makes no AWS "
        "call); the fit on its instance types is not checked"
    )


def test_platform_refusals_name_the_queue_by_its_key(tmp_path: Path) -> None:
    step = _plan(tmp_path, "ephemeral_storage=30, queue='cpu'", ENV).step("work")
    assert step.verdict == (
        "flow 'FirstHourFlow', step 'work', @batch: ephemeral_storage=30 is Fargate only (queue "
        "'cpu' is EC2). Remove ephemeral_storage (EC2 jobs use the instance's disk), or use a "
        "Fargate queue."
    )
    no_role = EnvironmentDescriptor(**{**ENV.__dict__, "execution_role_arn": ""})
    step = _plan(tmp_path, "queue='fargate'", no_role).step("work")
    assert step.verdict == (
        "flow 'FirstHourFlow', step 'work', @batch: execution_role=None (not given): queue "
        "'fargate' is on Fargate, which needs an execution role, and the environment has "
        "none. Give "
        "@batch(execution_role='arn:aws:iam::<account>:role/<name>')."
    )
    planned = _plan(tmp_path, "cpu=0.5, memory=1024", ENV).step("work")
    assert planned.ok and planned.target is not None
    assert planned.target.label == "fargate" and planned.target.queue.startswith("<GetAtt:")


def test_the_live_check_names_an_undeployed_queue_by_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from batchwright.plan import live_check

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    plan = _plan(tmp_path, "cpu=2", ENV)
    outside = _plan(tmp_path, "queue='team-queue'", ENV)
    with mock_aws(config={"batch": {"use_docker": False}}):
        client = boto3.client(
            "batch",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        checked = live_check(plan, client).step("work")
        missing = live_check(outside, client).step("work")
    assert checked.verdict == (
        "flow 'FirstHourFlow', step 'work', @batch: queue 'cpu' does not exist in this account "
        "and region: it is not deployed yet (its ARN was read from cdk.out). Deploy the "
        "environment (or check --environment / the region), or name an existing queue with "
        "@batch(queue=...)."
    )
    assert missing.verdict == (
        "flow 'FirstHourFlow', step 'work', @batch: queue 'team-queue' does not exist in this "
        "account and region. Deploy the environment (or check --environment / the region), or "
        "name an existing queue with @batch(queue=...)."
    )


def test_a_named_queue_that_lacks_a_capability_says_what_to_drop() -> None:
    refused = route(_options(efa=1, queue="spot"), ENV)
    assert refused.verdict == (
        "step 'train', @batch: queue='spot' can never run it (1 vCPU / 4096 MiB / 1 EFA "
        "interfaces): queue 'spot' is a Spot queue, and EFA jobs run on on-demand EC2 only. No "
        "queue of environment 'Sample' can take it: add one that can, or drop efa."
    )
