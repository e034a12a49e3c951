"""A second ``localaws deploy`` changes what changed, as CloudFormation would, and
``localaws destroy`` keeps what a Retain policy keeps.

The sample stack is deployed into an in-process moto server of its own (no jobs run, so
no Docker is needed), with the same patch the local AWS's server carries
(:func:`batchwright_localaws.motoserver.install_updates`).
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwright.environment.assembly import stack_template
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY, EnvironmentDescriptor
from batchwright_localaws import LocalAws
from batchwright_localaws import deploy as local_deploy
from batchwright_localaws.motoserver import install_updates

moto_server = pytest.importorskip("moto.server")

STACK = "BatchwrightSample"
IMAGE = {"DefaultImage": "batchwright/job:test"}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    install_updates()
    patch = pytest.MonkeyPatch()
    # As the local AWS's server has it: AWS-managed policies exist (the instance role's).
    patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    from moto.backends import get_backend

    get_backend("iam").reset()  # an IAM backend made before reads the setting again
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield LocalAws(
            endpoint=f"http://127.0.0.1:{port}",
            region="us-east-1",
            image=IMAGE["DefaultImage"],
            moto_pid=os.getpid(),
            dockerd_pid=None,
            state_dir=str(tmp_path_factory.mktemp("localaws")),
        )
    finally:
        server.stop()
        patch.undo()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from tests.cdk.sample_synth import synthesize_sample

    return dict(stack_template(synthesize_sample().outdir, STACK))


def _inventory(local: LocalAws) -> dict[str, list[str]]:
    """What the emulator holds, by kind (sorted names and ARNs)."""
    batch = local.client("batch")
    return {
        "buckets": sorted(b["Name"] for b in local.client("s3").list_buckets()["Buckets"]),
        "compute environments": sorted(
            c["computeEnvironmentArn"]
            for c in batch.describe_compute_environments()["computeEnvironments"]
        ),
        "queues": sorted(q["jobQueueArn"] for q in batch.describe_job_queues()["jobQueues"]),
        "roles": sorted(r["RoleName"] for r in local.client("iam").list_roles()["Roles"]),
        "log groups": sorted(
            g["logGroupName"] for g in local.client("logs").describe_log_groups()["logGroups"]
        ),
    }


FLOW = textwrap.dedent(
    """
    from batchwright import FlowSpec, step


    class KeptFlow(FlowSpec):
        @step
        def start(self):
            self.numbers = [1, 2, 3]
            self.next(self.end)

        @step
        def end(self):
            self.total = sum(self.numbers)


    if __name__ == "__main__":
        KeptFlow()
    """
)


def _flow(local: LocalAws, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHWRIGHT_"))},
        **local.environment(),
    }
    return subprocess.run(
        [sys.executable, str(folder / "kept_flow.py"), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_deploy_of_the_same_template_changes_nothing(
    local: LocalAws, template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    local_deploy.record_stack(local, first)
    assert first.created and not (first.unchanged or first.updated or first.deleted)
    before = _inventory(local)

    # A run made before the second deploy, its artifacts in the environment's bucket.
    root = EnvironmentDescriptor.from_json(first.outputs[DESCRIPTOR_OUTPUT_KEY]).datastore_root
    (tmp_path / "kept_flow.py").write_text(FLOW)
    ran = _flow(local, tmp_path, "run", "--datastore-root", root)
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.split("Run KeptFlow/")[1].split()[0]

    second = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    local_deploy.record_stack(local, second)
    assert second.physical_ids == first.physical_ids
    assert second.outputs == first.outputs
    assert second.unchanged == first.created
    assert not (second.created or second.updated or second.replaced or second.deleted)
    assert _inventory(local) == before  # no second bucket, queue or role

    # The run is still there: read it, and resume it from its last step.
    for key, value in local.environment().items():
        monkeypatch.setenv(key, value)
    from batchwright.client import Flow

    assert Flow("KeptFlow", datastore_root=root)[run_id].data.total == 6
    resumed = _flow(local, tmp_path, "resume", run_id, "--step", "end", "--datastore-root", root)
    assert resumed.returncode == 0, resumed.stderr
    assert "reused from" in resumed.stdout


def _first_compute_environment(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next(
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Batch::ComputeEnvironment"
        and "MaxvCpus" in resource["Properties"].get("ComputeResources", {})
    )


def test_a_changed_max_vcpus_updates_that_compute_environment_in_place(
    local: LocalAws, template: dict[str, Any]
) -> None:
    base = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    changed = copy.deepcopy(template)
    logical_id, resource = _first_compute_environment(changed)
    resources = resource["Properties"]["ComputeResources"]
    resources["MaxvCpus"] = int(resources["MaxvCpus"]) + 16

    updated = local_deploy.deploy(local, changed, STACK, parameters=IMAGE)
    assert updated.updated == [logical_id]
    assert not (updated.created or updated.replaced or updated.deleted)
    assert updated.physical_ids == base.physical_ids
    (environment,) = local.client("batch").describe_compute_environments(
        computeEnvironments=[updated.physical_ids[logical_id]]
    )["computeEnvironments"]
    assert environment["computeResources"]["maxvCpus"] == resources["MaxvCpus"]

    back = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    assert back.updated == [logical_id] and back.physical_ids == base.physical_ids


def test_a_changed_fixed_name_resource_that_must_be_replaced_is_refused(
    local: LocalAws, template: dict[str, Any]
) -> None:
    changed = copy.deepcopy(template)
    logical_id, resource = next(
        (k, r)
        for k, r in changed["Resources"].items()
        if r["Type"] == "AWS::SSM::Parameter" and "Name" in r["Properties"]
    )
    resource["Properties"]["Type"] = "StringList"  # Type changes by replacement
    with pytest.raises(Exception, match=f"{logical_id} .*must be replaced to change Type"):
        local_deploy.deploy(local, changed, STACK, parameters=IMAGE)


def test_destroy_deletes_what_cloudformation_would_and_keeps_the_retained_bucket(
    local: LocalAws, template: dict[str, Any]
) -> None:
    deployed = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    local_deploy.record_stack(local, deployed)
    retained = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain" and logical_id in deployed.physical_ids
    }
    buckets = [
        logical_id
        for logical_id in retained
        if template["Resources"][logical_id]["Type"] == "AWS::S3::Bucket"
    ]
    assert buckets, "the sample's datastore bucket is retained"
    bucket = deployed.physical_ids[buckets[0]]
    s3 = local.client("s3")
    s3.put_object(Bucket=bucket, Key="kept/object", Body=b"data")

    destroyed = local_deploy.destroy(local, STACK)
    assert not destroyed.failed, destroyed.failed
    assert set(destroyed.retained) == retained
    assert set(destroyed.deleted) == set(deployed.physical_ids) - retained | {
        "LocalBatchServiceRole"
    }
    held = _inventory(local)
    assert held["compute environments"] == [] and held["queues"] == []
    assert bucket in held["buckets"]
    assert s3.get_object(Bucket=bucket, Key="kept/object")["Body"].read() == b"data"
    parameter = next(
        r["Properties"]["Name"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SSM::Parameter" and "Name" in r["Properties"]
    )
    ssm = local.client("ssm")
    assert not ssm.get_parameters(Names=[parameter])["Parameters"]
    stacks = local.client("cloudformation").list_stacks()["StackSummaries"]
    assert not [
        s for s in stacks if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"
    ]
    with pytest.raises(Exception, match="holds no deployment of stack"):
        local_deploy.destroy(local, STACK)


def test_destroy_from_the_command_line(
    local: LocalAws,
    template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import batchwright_localaws
    from batchwright.cli import main as batchwright_main

    monkeypatch.setattr(batchwright_localaws, "current", lambda: local)
    assert batchwright_main(["localaws", "destroy", "Nowhere"]) == 2
    assert capsys.readouterr().err == (
        f"error: localaws destroy: the local AWS at {local.endpoint} holds no deployment of "
        "stack 'Nowhere'.\n"
    )
    deployed = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    assert batchwright_main(["localaws", "destroy", STACK]) == 0
    out = capsys.readouterr().out
    kept = [k for k in deployed.physical_ids if template["Resources"][k].get("DeletionPolicy")]
    deleted = len(deployed.physical_ids) - len(kept) + 1  # and the emulator's service role
    assert f"destroyed {STACK} in {local.endpoint}: {deleted} deleted, {len(kept)} retained" in out
    assert "retained (its policy keeps it): " in out


def test_a_deploy_that_fails_midway_leaves_nothing_untracked(
    local: LocalAws, template: dict[str, Any]
) -> None:
    before = _inventory(local)
    broken = copy.deepcopy(template)
    parameter = next(r for r in broken["Resources"].values() if r["Type"] == "AWS::SSM::Parameter")
    parameter["Properties"]["Type"] = "NoSuchType"  # refused by the API, late in the order
    with pytest.raises(Exception, match=r"deploying .*AWS::SSM::Parameter"):
        local_deploy.deploy(local, broken, STACK, parameters=IMAGE)
    assert _inventory(local) != before  # it had made resources when it failed

    # The next deploy takes them over instead of making a second set...
    fixed = local_deploy.deploy(local, template, STACK, parameters=IMAGE)
    ssm_ids = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SSM::Parameter"]
    assert set(ssm_ids) <= set(fixed.created) and fixed.unchanged and not fixed.replaced
    queues = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Batch::JobQueue"]
    held = _inventory(local)
    assert len(held["queues"]) == len(queues)
    assert len(held["buckets"]) == len(before["buckets"]) + 1
    # ...and a destroy finds all of them.
    destroyed = local_deploy.destroy(local, STACK)
    assert not destroyed.failed
    after = _inventory(local)
    assert after["queues"] == [] and after["compute environments"] == []
    assert len(after["buckets"]) == len(before["buckets"]) + 1  # the retained datastore
