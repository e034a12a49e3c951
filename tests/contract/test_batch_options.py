"""BatchOptions.from_attributes: defaults, merging with @resources and --with overrides,
and every refusal's message."""

from __future__ import annotations

from typing import Any

import pytest

from batchwright.batch.options import (
    DEFAULT_TMPFS_PATH,
    JOB_TAG_KEYS,
    MAX_TAGS,
    OPTION_KEYS,
    BatchOptions,
)
from batchwright.decorators import parse_value
from batchwright.errors import InvalidValue, UserInputError

ROLE = "arn:aws:iam::123456789012:role/job"


def test_defaults_are_the_documented_ones() -> None:
    options = BatchOptions.from_attributes("train", {})
    assert (options.cpu, options.memory, options.gpu) == (1, 4096, 0)
    assert options.image is None and options.queue is None
    assert not options.use_tmpfs and options.tmpfs_size is None and options.tempdir is None
    assert options.tmpfs_path == DEFAULT_TMPFS_PATH == "/batchwright_temp"
    assert options.inferentia == options.trainium == options.efa == 0
    assert options.aws_batch_tags == () and not options.privileged
    assert options.explicit == frozenset()


def test_none_means_not_given() -> None:
    options = BatchOptions.from_attributes("train", {"cpu": None, "memory": None, "image": None})
    assert (options.cpu, options.memory, options.image) == (1, 4096, None)


@pytest.mark.parametrize(
    ("key", "value", "attribute", "expected"),
    [
        ("cpu", 4, "cpu", 4),
        ("cpu", 0.25, "cpu", 0.25),
        ("cpu", 2.0, "cpu", 2),
        ("memory", 16000, "memory", 16000),
        ("gpu", 2, "gpu", 2),
        (
            "image",
            "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
            "image",
            "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
        ),
        ("queue", "gpu-queue", "queue", "gpu-queue"),
        ("iam_role", ROLE, "iam_role", ROLE),
        ("execution_role", ROLE, "execution_role", ROLE),
        ("shared_memory", 2048, "shared_memory", 2048),
        ("max_swap", 0, "max_swap", 0),
        ("inferentia", 4, "inferentia", 4),
        ("trainium", 16, "inferentia", 16),
        ("efa", 8, "efa", 8),
        ("use_tmpfs", True, "tmpfs_size", 2048),
        ("tmpfs_size", 1000, "tmpfs_size", 1000),
        ("tmpfs_path", "/scratch", "tmpfs_path", "/scratch"),
        ("tmpfs_tempdir", False, "tmpfs_tempdir", False),
        ("ephemeral_storage", 21, "ephemeral_storage", 21),
        ("ephemeral_storage", 200, "ephemeral_storage", 200),
        (
            "aws_batch_tags",
            {"team": "ml", "b": "2"},
            "aws_batch_tags",
            (("b", "2"), ("team", "ml")),
        ),
        ("log_driver", "awslogs", "log_driver", "awslogs"),
        ("privileged", True, "privileged", True),
        (
            "secrets",
            {"TOKEN": "/team/token", "A": "/a"},
            "secrets",
            (("A", "/a"), ("TOKEN", "/team/token")),
        ),
    ],
)
def test_each_option_alone(key: str, value: Any, attribute: str, expected: Any) -> None:
    options = BatchOptions.from_attributes("train", {key: value})
    assert getattr(options, attribute) == expected
    assert key in options.explicit or (key == "trainium" and "inferentia" in options.explicit)


def test_tmpfs_is_implied_by_size_or_path_and_sized_from_memory() -> None:
    by_size = BatchOptions.from_attributes("s", {"tmpfs_size": 512})
    assert by_size.use_tmpfs and by_size.tempdir == "/batchwright_temp"
    by_path = BatchOptions.from_attributes("s", {"tmpfs_path": "/fast", "memory": 10000})
    assert by_path.use_tmpfs and by_path.tmpfs_size == 5000 and by_path.tempdir == "/fast"
    no_tempdir = BatchOptions.from_attributes("s", {"use_tmpfs": True, "tmpfs_tempdir": False})
    assert no_tempdir.use_tmpfs and no_tempdir.tempdir is None


def test_swap_and_logging_together() -> None:
    options = BatchOptions.from_attributes(
        "s",
        {"max_swap": 2048, "swappiness": 60, "log_driver": "splunk", "log_options": {"a": "b"}},
    )
    assert (options.max_swap, options.swappiness) == (2048, 60)
    assert options.log_options_dict == {"a": "b"}


@pytest.mark.parametrize(
    ("batch", "resources", "expected"),
    [
        ({"cpu": 2, "memory": 8000}, {"cpu": 4, "memory": 1000}, (4, 8000, 0)),
        ({"gpu": 1}, {"gpu": 2}, (1, 4096, 2)),
        ({}, {"memory": 2048}, (1, 2048, 0)),  # only @resources names it: its value
        ({"memory": 30000}, {"memory": 2048, "cpu": None}, (1, 30000, 0)),
    ],
)
def test_larger_of_batch_and_resources_wins(
    batch: dict[str, Any], resources: dict[str, Any], expected: tuple[float, int, int]
) -> None:
    options = BatchOptions.from_attributes("s", batch, resources=resources)
    assert (options.cpu, options.memory, options.gpu) == expected


def test_resources_drive_the_default_tmpfs_size() -> None:
    options = BatchOptions.from_attributes("s", {"use_tmpfs": True}, resources={"memory": 9000})
    assert options.tmpfs_size == 4500


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("4", "cpu", 4),
        ("0.5", "cpu", 0.5),
        ("16000", "memory", 16000),
        ("true", "use_tmpfs", True),
        ("No", "privileged", False),
        ("my-image:1", "image", "my-image:1"),
        ('{"team":"ml"}', "aws_batch_tags", (("team", "ml"),)),
        ("3", "trainium", 3),
    ],
)
def test_overrides_are_parsed_by_key(text: str, key: str, expected: Any) -> None:
    options = BatchOptions.from_attributes("s", {}, overrides={key: parse_value(text)})
    attribute = "inferentia" if key == "trainium" else key
    assert getattr(options, attribute) == expected


def test_overrides_replace_code_key_by_key() -> None:
    options = BatchOptions.from_attributes(
        "s",
        {"cpu": 8, "memory": 32000, "image": "a:1", "inferentia": 2},
        overrides={"cpu": 2, "trainium": 4},
    )
    assert (options.cpu, options.memory, options.image, options.inferentia) == (2, 32000, "a:1", 4)


def test_tags_fill_the_room_left_by_ours() -> None:
    room = MAX_TAGS - len(JOB_TAG_KEYS)
    tags = {f"k{i}": "v" for i in range(room)}
    assert len(BatchOptions.from_attributes("s", {"aws_batch_tags": tags}).aws_batch_tags) == room


def test_a_key_of_128_and_a_value_of_256_characters_are_accepted() -> None:
    tags = {"k" * 128: "v" * 256}
    assert BatchOptions.from_attributes("s", {"aws_batch_tags": tags}).tags == tags


# --- refusals ---------------------------------------------------------------------------

TOO_MANY_TAGS = {f"k{i}": "v" for i in range(MAX_TAGS - len(JOB_TAG_KEYS) + 1)}

# (id, attributes, resources, overrides, key, value shown, where shown, words of the fix)
REFUSALS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str], str, Any, str, str]] = [
    ("unknown key", {"cpus": 2}, {}, {}, "cpus", 2, "@batch", "Did you mean 'cpu'"),
    ("unknown key lists known", {"colour": 1}, {}, {}, "colour", 1, "@batch", "Known options: cpu"),
    ("cpu zero", {"cpu": 0}, {}, {}, "cpu", 0, "@batch", "more than 0"),
    ("cpu negative", {"cpu": -1}, {}, {}, "cpu", -1, "@batch", "more than 0"),
    ("cpu string in code", {"cpu": "2"}, {}, {}, "cpu", "2", "@batch", "as a number"),
    ("cpu bool", {"cpu": True}, {}, {}, "cpu", True, "@batch", "as a number"),
    ("memory float", {"memory": 2.5}, {}, {}, "memory", 2.5, "@batch", "whole number"),
    ("memory tiny", {"memory": 2}, {}, {}, "memory", 2, "@batch", "at least 4"),
    ("gpu negative", {"gpu": -1}, {}, {}, "gpu", -1, "@batch", "at least 0"),
    (
        "swappiness high",
        {"max_swap": 1, "swappiness": 101},
        {},
        {},
        "swappiness",
        101,
        "@batch",
        "between 0 and 100",
    ),
    (
        "swappiness low",
        {"max_swap": 1, "swappiness": -1},
        {},
        {},
        "swappiness",
        -1,
        "@batch",
        "between 0 and 100",
    ),
    ("swappiness alone", {"swappiness": 10}, {}, {}, "swappiness", 10, "@batch", "Set max_swap"),
    ("max_swap negative", {"max_swap": -1}, {}, {}, "max_swap", -1, "@batch", "at least 0"),
    (
        "shared_memory zero",
        {"shared_memory": 0},
        {},
        {},
        "shared_memory",
        0,
        "@batch",
        "at least 1",
    ),
    (
        "ephemeral low",
        {"ephemeral_storage": 20},
        {},
        {},
        "ephemeral_storage",
        20,
        "@batch",
        "between 21 and 200",
    ),
    (
        "ephemeral high",
        {"ephemeral_storage": 201},
        {},
        {},
        "ephemeral_storage",
        201,
        "@batch",
        "between 21 and 200",
    ),
    (
        "inferentia and trainium",
        {"inferentia": 1, "trainium": 1},
        {},
        {},
        "trainium",
        1,
        "@batch",
        "only one of inferentia or trainium",
    ),
    ("efa negative", {"efa": -2}, {}, {}, "efa", -2, "@batch", "at least 0"),
    (
        "tmpfs path relative",
        {"tmpfs_path": "scratch"},
        {},
        {},
        "tmpfs_path",
        "scratch",
        "@batch",
        "'/scratch'",
    ),
    ("tmpfs size zero", {"tmpfs_size": 0}, {}, {}, "tmpfs_size", 0, "@batch", "at least 1"),
    (
        "tmpfs larger than memory",
        {"tmpfs_size": 5000},
        {},
        {},
        "tmpfs_size",
        5000,
        "@batch",
        "tmpfs_size <= 4096",
    ),
    (
        "tmpfs disabled but sized",
        {"use_tmpfs": False, "tmpfs_size": 100},
        {},
        {},
        "tmpfs_size",
        100,
        "@batch",
        "use_tmpfs=True",
    ),
    (
        "use_tmpfs string",
        {"use_tmpfs": "yes"},
        {},
        {},
        "use_tmpfs",
        "yes",
        "@batch",
        "True or False",
    ),
    ("privileged int", {"privileged": 1}, {}, {}, "privileged", 1, "@batch", "True or False"),
    (
        "role name only",
        {"iam_role": "my-role"},
        {},
        {},
        "iam_role",
        "my-role",
        "@batch",
        "full ARN",
    ),
    (
        "execution role not a role",
        {"execution_role": "arn:aws:s3:::b"},
        {},
        {},
        "execution_role",
        "arn:aws:s3:::b",
        "@batch",
        "full ARN",
    ),
    ("image empty", {"image": ""}, {}, {}, "image", "", "@batch", "Give an image reference"),
    ("image with space", {"image": "a b"}, {}, {}, "image", "a b", "@batch", "python:3.12-slim"),
    ("queue not a string", {"queue": 3}, {}, {}, "queue", 3, "@batch", "Give the key of one"),
    (
        "log driver unknown",
        {"log_driver": "stdout"},
        {},
        {},
        "log_driver",
        "stdout",
        "@batch",
        "awslogs",
    ),
    (
        "log options alone",
        {"log_options": {"a": "b"}},
        {},
        {},
        "log_options",
        {"a": "b"},
        "@batch",
        "Set log_driver",
    ),
    (
        "log options not strings",
        {"log_driver": "awslogs", "log_options": {"a": 1}},
        {},
        {},
        "log_options",
        {"a": 1},
        "@batch",
        "as a string",
    ),
    (
        "tags not a mapping",
        {"aws_batch_tags": ["a"]},
        {},
        {},
        "aws_batch_tags",
        ["a"],
        "@batch",
        "dict of strings",
    ),
    (
        "tag value not a string",
        {"aws_batch_tags": {"n": 1}},
        {},
        {},
        "aws_batch_tags",
        {"n": 1},
        "@batch",
        "as a string",
    ),
    (
        "too many tags",
        {"aws_batch_tags": TOO_MANY_TAGS},
        {},
        {},
        "aws_batch_tags",
        TOO_MANY_TAGS,
        "@batch",
        "at most 45",
    ),
    (
        "tag key too long",
        {"aws_batch_tags": {"k" * 129: "v"}},
        {},
        {},
        "aws_batch_tags",
        {"k" * 129: "v"},
        "@batch",
        "1 to 128",
    ),
    (
        "tag value too long",
        {"aws_batch_tags": {"k": "v" * 257}},
        {},
        {},
        "aws_batch_tags",
        {"k": "v" * 257},
        "@batch",
        "at most 256",
    ),
    (
        "tag key empty",
        {"aws_batch_tags": {"": "v"}},
        {},
        {},
        "aws_batch_tags",
        {"": "v"},
        "@batch",
        "1 to 128",
    ),
    (
        "aws prefix",
        {"aws_batch_tags": {"aws:cost": "x"}},
        {},
        {},
        "aws_batch_tags",
        {"aws:cost": "x"},
        "@batch",
        "without the 'aws:'",
    ),
    (
        "AWS prefix any case",
        {"aws_batch_tags": {"AWS:cost": "x"}},
        {},
        {},
        "aws_batch_tags",
        {"AWS:cost": "x"},
        "@batch",
        "without the 'aws:'",
    ),
    (
        "our prefix",
        {"aws_batch_tags": {"batchwright:run": "x"}},
        {},
        {},
        "aws_batch_tags",
        {"batchwright:run": "x"},
        "@batch",
        "without the 'batchwright:'",
    ),
    (
        "tag characters",
        {"aws_batch_tags": {"a*b": "x"}},
        {},
        {},
        "aws_batch_tags",
        {"a*b": "x"},
        "@batch",
        "letters, digits",
    ),
    ("bad resources memory", {}, {"memory": -5}, {}, "memory", -5, "@resources", "at least 4"),
    ("override unknown key", {}, {}, {"ram": "4"}, "ram", 4, "--with batch", "Known options"),
    (
        "override not a number",
        {},
        {},
        {"cpu": "four"},
        "cpu",
        "four",
        "--with batch",
        "e.g. 2 or 0.5",
    ),
    (
        "override memory with unit",
        {},
        {},
        {"memory": "16G"},
        "memory",
        "16G",
        "--with batch",
        "Give a whole number of MiB",
    ),
    (
        "override bool",
        {},
        {},
        {"use_tmpfs": "maybe"},
        "use_tmpfs",
        "maybe",
        "--with batch",
        "true/false, yes/no or on/off",
    ),
    (
        "override tags not json",
        {},
        {},
        {"aws_batch_tags": "team=ml"},
        "aws_batch_tags",
        "team=ml",
        "--with batch",
        "as JSON",
    ),
    (
        "override range",
        {},
        {},
        {"swappiness": "300", "max_swap": "1"},
        "swappiness",
        300,
        "--with batch",
        "between 0 and 100",
    ),
    (
        "secret value not a reference",
        {"secrets": {"TOKEN": "hunter2"}},
        {},
        {},
        "secrets",
        {"TOKEN": "hunter2"},
        "@batch",
        "Never the secret itself",
    ),
    (
        "override secrets not json",
        {},
        {},
        {"secrets": "TOKEN=/team/token"},
        "secrets",
        "TOKEN=/team/token",
        "--with batch",
        "as JSON",
    ),
    (
        "override both aliases",
        {},
        {},
        {"inferentia": "1", "trainium": "2"},
        "trainium",
        2,
        "--with batch",
        "only one",
    ),
]


@pytest.mark.parametrize(
    ("attributes", "resources", "overrides", "key", "value", "where", "fix"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
def test_refusal_names_step_key_value_and_fix(
    attributes: dict[str, Any],
    resources: dict[str, Any],
    overrides: dict[str, str],
    key: str,
    value: Any,
    where: str,
    fix: str,
) -> None:
    with pytest.raises(InvalidValue) as caught:
        BatchOptions.from_attributes(
            "train",
            attributes,
            resources=resources,
            overrides={k: parse_value(v) for k, v in overrides.items()},
        )
    error = caught.value
    message = str(error)
    assert message.startswith(f"step 'train', {where}:"), message
    assert f"{key}={value!r}" in message, message
    assert fix in error.fix and error.fix in message, message
    assert (error.key, error.value) == (key, value)
    assert isinstance(error, UserInputError) and error.exit_code == 2


def test_every_option_key_is_documented_in_the_known_list() -> None:
    with pytest.raises(InvalidValue) as caught:
        BatchOptions.from_attributes("s", {"nope": 1})
    for key in OPTION_KEYS:
        assert key in caught.value.fix


def test_messages_name_the_flow_when_given() -> None:
    with pytest.raises(InvalidValue) as caught:
        BatchOptions.from_attributes("train", {"gpu": -1}, flow="TrainFlow")
    assert str(caught.value).startswith("flow 'TrainFlow', step 'train', @batch: gpu=-1 ")
    options = BatchOptions.from_attributes("train", {}, flow="TrainFlow")
    assert options.location == "flow 'TrainFlow', step 'train'"
    assert options == BatchOptions.from_attributes("train", {})  # the flow is for messages only
