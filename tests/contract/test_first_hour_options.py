"""Option mistakes a new user makes, caught by BatchOptions.from_attributes before anything
runs: image references Docker would refuse, queue values that are no queue, and options
that contradict each other (no environment needed). Messages are asserted in full."""

from __future__ import annotations

from typing import Any

import pytest

from batchwright.batch.options import BatchOptions, split_image
from batchwright.decorators import parse_value
from batchwright.errors import InvalidValue, UserInputError

IMAGE_FIX = (
    "Give an image reference such as '123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.4' "
    "or 'python:3.12-slim': [registry[:port]/]path[:tag][@sha256:<hex>], the path in "
    "lowercase letters and digits separated by '/', '.', '_', '__' or '-'."
)
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _refusal(attributes: dict[str, Any], **kwargs: Any) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        BatchOptions.from_attributes("train", attributes, **kwargs)
    error = caught.value
    assert isinstance(error, UserInputError) and error.exit_code == 2
    return error


# --- image= -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "python:3.12",
        "python:3.12-slim",
        "img",
        "my-image:1",
        "library/python",
        "a__b/c--d.e_f",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.4",
        "public.ecr.aws/docker/library/python:3.12-slim",
        "localhost:5000/team/train:Latest_2",
        "localhost/train",
        "registry.example.com:443/a/b/c",
        "[::1]:5000/train",
        f"python@{DIGEST}",
        f"ghcr.io/org/train:1.0@{DIGEST}",
        "Registry.Example.com/train",  # host names are case-insensitive
        "x" * 255,
    ],
)
def test_image_references_docker_accepts(image: str) -> None:
    assert BatchOptions.from_attributes("train", {"image": image}).image == image


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("python:3.12", (None, "python", "3.12", None)),
        ("localhost:5000/a/b", ("localhost:5000", "a/b", None, None)),
        ("my.reg/a:t@" + DIGEST, ("my.reg", "a", "t", DIGEST)),
        ("team/train", (None, "team/train", None, None)),
    ],
)
def test_image_references_split_as_docker_does(
    image: str, parts: tuple[str | None, str, str | None, str | None]
) -> None:
    assert split_image(image) == parts


IMAGE_REFUSALS = [
    ("x!!", f"image='x!!' is not a Docker image reference. {IMAGE_FIX}"),
    (
        "MyOrg/Train:Latest",
        "image='MyOrg/Train:Latest' has capital letters in its repository 'MyOrg/Train'; "
        "Docker takes lowercase only. Write the repository in lowercase: 'myorg/train:Latest'.",
    ),
    (
        "Train",
        "image='Train' has capital letters in its repository 'Train'; Docker takes lowercase "
        "only. Write the repository in lowercase: 'train'.",
    ),
    ("", f"image='' is not a Docker image reference. {IMAGE_FIX}"),
    ("a b", f"image='a b' is not a Docker image reference. {IMAGE_FIX}"),
    ("a___b", f"image='a___b' is not a Docker image reference. {IMAGE_FIX}"),
    (
        "reg.io/-a",
        f"image='reg.io/-a' has the repository path '-a', which Docker does not allow. {IMAGE_FIX}",
    ),
    (
        "python:",
        "image='python:' has the tag ''; a tag is 1 to 128 letters, digits, '_', '.' or '-' "
        f"and does not start with '.' or '-'. {IMAGE_FIX}",
    ),
    (
        "python:-x",
        "image='python:-x' has the tag '-x'; a tag is 1 to 128 letters, digits, '_', '.' or "
        f"'-' and does not start with '.' or '-'. {IMAGE_FIX}",
    ),
    (
        "python:" + "1" * 129,
        f"image='python:{'1' * 129}' has the tag '{'1' * 129}'; a tag is 1 to 128 letters, "
        f"digits, '_', '.' or '-' and does not start with '.' or '-'. {IMAGE_FIX}",
    ),
    (
        "python@sha256:abc",
        "image='python@sha256:abc' has the digest 'sha256:abc', which is not "
        f"<algorithm>:<hex, 32 digits or more>. {IMAGE_FIX}",
    ),
    (
        "bad_host.io/train",
        "image='bad_host.io/train' has the registry 'bad_host.io', which is not a host name "
        f"with an optional port. {IMAGE_FIX}",
    ),
    (
        "x" * 256,
        f"image='{'x' * 256}' has a name longer than the 255 characters Docker allows. {IMAGE_FIX}",
    ),
]


@pytest.mark.parametrize(("image", "message"), IMAGE_REFUSALS)
def test_image_references_docker_refuses(image: str, message: str) -> None:
    error = _refusal({"image": image})
    assert str(error) == f"step 'train', @batch: {message}"
    assert (error.key, error.value) == ("image", image)


def test_image_on_the_command_line_names_its_source() -> None:
    error = _refusal({}, overrides={"image": parse_value("MyOrg/Train:Latest")})
    assert str(error).startswith("step 'train', --with batch: image='MyOrg/Train:Latest' has")


# --- queue= -------------------------------------------------------------------------------

QUEUE_FIX = (
    "Give the key of one of the environment's queues (e.g. 'cpu'), a queue name (1 to 128 "
    "letters, digits, '-' or '_') or the queue's ARN "
    "('arn:aws:batch:us-east-1:123456789012:job-queue/my-queue')."
)


@pytest.mark.parametrize(
    "queue",
    [
        "cpu",
        "gpu-spot",
        "My_Queue-2",
        "q" * 128,
        "arn:aws:batch:us-east-1:123456789012:job-queue/train",
        "arn:aws-cn:batch:cn-north-1:123456789012:job-queue/train",
    ],
)
def test_queue_values_that_can_name_a_queue(queue: str) -> None:
    assert BatchOptions.from_attributes("train", {"queue": queue}).queue == queue


@pytest.mark.parametrize(
    "queue",
    [
        "gpu large",
        "q" * 129,
        "my/queue",
        "arn:aws:batch:us-east-1:123456789012:compute-environment/ce",
        "arn:aws:sqs:us-east-1:123456789012:job-queue/x",
        3,
    ],
)
def test_queue_values_that_cannot_name_a_queue(queue: Any) -> None:
    error = _refusal({"queue": queue})
    assert str(error) == (
        f"step 'train', @batch: queue={queue!r} is neither a queue key, a job queue name nor a "
        f"job queue ARN. {QUEUE_FIX}"
    )


# --- contradictions -----------------------------------------------------------------------

CONTRADICTIONS = [
    (
        {"gpu": 1, "ephemeral_storage": 50},
        "ephemeral_storage=50 contradicts gpu=1: ephemeral_storage exists only on Fargate and "
        "gpu exists only on EC2, so no queue can run the step. Drop gpu to run on Fargate, or "
        "drop ephemeral_storage to run on EC2.",
    ),
    (
        {"privileged": True, "ephemeral_storage": 21},
        "ephemeral_storage=21 contradicts privileged=True: ephemeral_storage exists only on "
        "Fargate and privileged exists only on EC2, so no queue can run the step. Drop "
        "privileged to run on Fargate, or drop ephemeral_storage to run on EC2.",
    ),
    (
        {"use_tmpfs": True, "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts use_tmpfs=True: ephemeral_storage exists only on "
        "Fargate and use_tmpfs exists only on EC2, so no queue can run the step. Drop "
        "use_tmpfs to run on Fargate, or drop ephemeral_storage to run on EC2.",
    ),
    (
        {"tmpfs_size": 512, "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts tmpfs_size=512: ephemeral_storage exists only on "
        "Fargate and tmpfs_size exists only on EC2, so no queue can run the step. Drop "
        "tmpfs_size to run on Fargate, or drop ephemeral_storage to run on EC2.",
    ),
    (
        {"shared_memory": 1024, "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts shared_memory=1024: ephemeral_storage exists only "
        "on Fargate and shared_memory exists only on EC2, so no queue can run the step. Drop "
        "shared_memory to run on Fargate, or drop ephemeral_storage to run on EC2.",
    ),
    (
        {"max_swap": 1024, "swappiness": 10, "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts max_swap=1024 and swappiness=10: ephemeral_storage "
        "exists only on Fargate and max_swap and swappiness exist only on EC2, so no queue "
        "can run the step. Drop max_swap and swappiness to run on Fargate, or drop "
        "ephemeral_storage to run on EC2.",
    ),
    (
        {"trainium": 1, "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts trainium=1: ephemeral_storage exists only on "
        "Fargate and trainium exists only on EC2, so no queue can run the step. Drop trainium "
        "to run on Fargate, or drop ephemeral_storage to run on EC2.",
    ),
    (
        {"efa": 2, "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts efa=2: ephemeral_storage exists only on Fargate and "
        "efa exists only on EC2, so no queue can run the step. Drop efa to run on Fargate, or "
        "drop ephemeral_storage to run on EC2.",
    ),
    (
        {"log_driver": "syslog", "ephemeral_storage": 30},
        "ephemeral_storage=30 contradicts log_driver='syslog': ephemeral_storage exists only "
        "on Fargate and the syslog log driver exists only on EC2, so no queue can run the "
        "step. Use log_driver='awslogs' or 'splunk' to run on Fargate, or drop "
        "ephemeral_storage to run on EC2.",
    ),
    (
        {"cpu": 0.5, "gpu": 1},
        "cpu=0.5 contradicts gpu=1: fractional vCPUs exist only on Fargate and gpu exists only "
        "on EC2, so no queue can run the step. Drop gpu to run on Fargate, or use cpu=1 to run "
        "on EC2.",
    ),
    (
        {"cpu": 0.25, "ephemeral_storage": 30, "privileged": True, "shared_memory": 64},
        "cpu=0.25 and ephemeral_storage=30 contradict shared_memory=64 and privileged=True: "
        "fractional vCPUs and ephemeral_storage exist only on Fargate and shared_memory and "
        "privileged exist only on EC2, so no queue can run the step. Drop shared_memory and "
        "privileged to run on Fargate, or use cpu=1 and drop ephemeral_storage to run on EC2.",
    ),
    (
        {"gpu": 1, "inferentia": 2},
        "gpu=1 contradicts inferentia=2: no EC2 instance type has both NVIDIA GPUs and Neuron "
        "devices, so no queue can run the step. Keep one of them: gpu for a GPU queue, or "
        "inferentia for a Neuron queue.",
    ),
    (
        {"gpu": 1, "trainium": 2},
        "gpu=1 contradicts trainium=2: no EC2 instance type has both NVIDIA GPUs and Neuron "
        "devices, so no queue can run the step. Keep one of them: gpu for a GPU queue, or "
        "trainium for a Neuron queue.",
    ),
]


@pytest.mark.parametrize(("attributes", "message"), CONTRADICTIONS)
def test_options_that_contradict_each_other_name_both(
    attributes: dict[str, Any], message: str
) -> None:
    error = _refusal(attributes, flow="TrainFlow")
    assert str(error) == f"flow 'TrainFlow', step 'train', @batch: {message}"


def test_a_contradiction_across_sources_says_where_the_other_came_from() -> None:
    error = _refusal({"ephemeral_storage": 30}, overrides={"gpu": parse_value("1")})
    assert str(error) == (
        "step 'train', @batch: ephemeral_storage=30 contradicts gpu=1 (from --with batch): "
        "ephemeral_storage exists only on Fargate and gpu exists only on EC2, so no queue can "
        "run the step. Drop gpu to run on Fargate, or drop ephemeral_storage to run on EC2."
    )
    error = _refusal({"gpu": 1}, resources={"cpu": 0.5})
    assert str(error) == (
        "step 'train', @resources: cpu=0.5 contradicts gpu=1 (from @batch): fractional vCPUs "
        "exist only on Fargate and gpu exists only on EC2, so no queue can run the step. Drop "
        "gpu to run on Fargate, or use cpu=1 to run on EC2."
    )


@pytest.mark.parametrize(
    "attributes",
    [
        {"cpu": 0.5, "memory": 1024},
        {"cpu": 0.25, "ephemeral_storage": 30, "log_driver": "awslogs"},
        {"ephemeral_storage": 30, "log_driver": "splunk", "tmpfs_tempdir": False},
        {"gpu": 1, "efa": 1, "privileged": True, "log_driver": "syslog"},
        {"inferentia": 1, "efa": 1, "shared_memory": 64},
        {"use_tmpfs": False, "ephemeral_storage": 30},
    ],
)
def test_options_of_one_platform_together_are_fine(attributes: dict[str, Any]) -> None:
    BatchOptions.from_attributes("train", attributes)


def test_a_bad_alias_value_names_the_alias_as_written() -> None:
    error = _refusal({"trainium": -1})
    assert (
        str(error) == "step 'train', @batch: trainium=-1 is out of range. Give a value at least 0."
    )
