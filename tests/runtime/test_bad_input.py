"""Bad input ends the command before any task runs: exit 2, one paragraph, no traceback."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ._support import SAMPLE_FLOWS, RunFlow, write_flow

HEADER = "from batchwright import FlowSpec, Parameter, step, retry, catch, timeout\n\n\n"
FOOTER = "\n\nif __name__ == '__main__':\n    BadFlow()\n"


def _flow(body: str) -> str:
    return (
        HEADER
        + "class BadFlow(FlowSpec):\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + FOOTER
    )


def _assert_rejected(result: object, datastore: Path, *fragments: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.returncode == 2, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(error_lines) == 1 and error_lines[0].startswith("error: "), output
    for fragment in fragments:
        assert fragment in error_lines[0], output
    # Nothing ran: no task started and no run was recorded.
    assert "started" not in result.stdout  # type: ignore[attr-defined]
    assert not (datastore / "BadFlow").exists()


GRAPH_ERRORS = {
    "missing start": (
        """
        @step
        def begin(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["has no 'start' step"],
    ),
    "missing end": (
        """
        @step
        def start(self):
            self.next(self.finish)

        @step
        def finish(self):
            pass
        """,
        ["has no 'end' step"],
    ),
    "no self.next": (
        """
        @step
        def start(self):
            self.x = 1

        @step
        def end(self):
            pass
        """,
        ["step 'start' (line 8)", "does not end with self.next"],
    ),
    "unknown target": (
        """
        @step
        def start(self):
            self.next(self.middle)

        @step
        def end(self):
            pass
        """,
        ["step 'start'", "'middle', which is not a step"],
    ),
    "unreachable": (
        """
        @step
        def start(self):
            self.next(self.end)

        @step
        def orphan(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'orphan' (line 11)", "not reachable"],
    ),
    "join arity": (
        """
        @step
        def start(self):
            self.next(self.a, self.b, self.c)

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def c(self):
            self.next(self.end)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'end'", "must be a join"],
    ),
    "join wrong count": (
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.b2)

        @step
        def b2(self):
            self.next(self.end)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["must be a join"],
    ),
    "join without split": (
        """
        @step
        def start(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'join' (line 11)", "no split or foreach open"],
    ),
    "mismatched branches": (
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.a1, self.a2)

        @step
        def a1(self):
            self.next(self.join_a)

        @step
        def a2(self):
            self.next(self.join_outer)

        @step
        def b(self):
            self.next(self.join_a)

        @step
        def join_a(self, inputs):
            self.next(self.join_outer)

        @step
        def join_outer(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["mismatched branches"],
    ),
    "split never joined": (
        """
        @step
        def start(self):
            self.next(self.work, foreach="items")

        @step
        def work(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'start'", "never joined"],
    ),
    "foreach not a string": (
        """
        @step
        def start(self):
            self.next(self.work, foreach=items)

        @step
        def work(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["foreach= must be the artifact's name as a string literal"],
    ),
    "cycle": (
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.start)

        @step
        def end(self):
            pass
        """,
        ["nothing may lead to start"],
    ),
    "end calls next": (
        """
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            self.next(self.start)
        """,
        ["step 'end'", "must not call self.next"],
    ),
}


@pytest.mark.parametrize("case", sorted(GRAPH_ERRORS))
def test_graph_errors_are_reported_before_running(
    case: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    body, fragments = GRAPH_ERRORS[case]
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    _assert_rejected(run_flow(flow_file, "run"), datastore, *fragments)
    _assert_rejected(run_flow(flow_file, "check"), datastore, *fragments)


GOOD_BODY = """
count = Parameter("count", default=1)
ratio = Parameter("ratio", type=float, default=0.5)
flag = Parameter("flag", type=bool, default=False)
needed = Parameter("needed", required=True)

@retry(times=1)
@step
def start(self):
    self.next(self.end)

@step
def end(self):
    pass
"""

BAD_VALUES = {
    "int": (["--needed", "x", "--count", "many"], ["parameter 'count'", "'many'", "int"]),
    "float": (["--needed", "x", "--ratio", "half"], ["parameter 'ratio'", "'half'", "float"]),
    "bool": (["--needed", "x", "--flag", "maybe"], ["parameter 'flag'", "'maybe'", "bool"]),
    "required": ([], ["parameter 'needed' is required"]),
    "max workers": (["--needed", "x", "--max-workers", "0"], ["--max-workers=0"]),
    "with unknown": (["--needed", "x", "--with", "nosuch"], ["no step decorator named 'nosuch'"]),
    "with bad value": (
        ["--needed", "x", "--with", "timeout:seconds=-3"],
        ["step 'start', @timeout", "seconds=-3"],
    ),
    "with bad key": (
        ["--needed", "x", "--with", "resources:cpus=2"],
        ["@resources", "cpus=2", "cpu, gpu, memory"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_reported_before_running(
    case: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    args, fragments = BAD_VALUES[case]
    flow_file = write_flow(tmp_path, "bad_flow", _flow(GOOD_BODY))
    _assert_rejected(run_flow(flow_file, "run", *args), datastore, *fragments)


def test_json_and_include_file_values(run_flow: RunFlow, tmp_path: Path) -> None:
    flow = SAMPLE_FLOWS / "parameters_flow.py"
    bad_json = run_flow(flow, "run", "--token", "t", "--config", "{not json")
    assert bad_json.returncode == 2 and "parameter 'config'" in bad_json.stderr
    missing = run_flow(flow, "run", "--token", "t", "--notes", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "IncludeFile 'notes'" in missing.stderr
    assert "cannot be read" in missing.stderr and "Traceback" not in missing.output


def test_bad_decorator_value_on_a_step(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    body = GOOD_BODY.replace("@retry(times=1)", "@retry(times=-1)")
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "run", "--needed", "x")
    _assert_rejected(result, datastore, "flow 'BadFlow', step 'start', @retry", "times=-1")


def test_an_unknown_decorator_key_gets_a_guess(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    body = GOOD_BODY.replace("@retry(times=1)", "@retry(time=2)")
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    _assert_rejected(
        run_flow(flow_file, "run", "--needed", "x"),
        datastore,
        "error: flow 'BadFlow', step 'start', @retry: time=2 is not an attribute of this "
        "decorator. Did you mean 'times'? Use one of: minutes_between_retries, times.",
    )


def test_foreach_over_a_non_iterable_fails_clearly(run_flow: RunFlow, tmp_path: Path) -> None:
    body = """
    @step
    def start(self):
        self.items = 5
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
    """
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "run", "--with", "retry:times=3,minutes_between_retries=0")
    assert result.returncode == 1
    assert (
        "foreach='items' needs a list, tuple or other iterable of items, got int 5" in result.stdout
    )
    # A deterministic failure is not retried, even with @retry.
    assert "retry 1" not in result.stdout
    assert f"task BadFlow/{result.run_id}/start/1 failed" in result.stderr


def test_a_keyword_parameter_does_not_take_is_refused(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    body = GOOD_BODY.replace("required=True)", "requried=True)")
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "check")
    assert result.returncode == 2 and "Traceback" not in result.output
    assert result.stderr == (
        "error: flow 'BadFlow', parameter 'needed': requried=True is not a keyword of "
        "Parameter. Did you mean 'required'? It takes: name, default, type, help, required, "
        "show_default, separator.\n"
    )


def test_a_separator_splits_a_string_value_into_a_list(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    body = """
letters = Parameter("letters", default="a,b", separator=",", show_default=False)

@step
def start(self):
    print("letters", self.letters)
    self.next(self.end)

@step
def end(self):
    pass
"""
    flow_file = write_flow(tmp_path, "sep_flow", _flow(body))
    default = run_flow(flow_file, "run")
    assert default.returncode == 0, default.output
    assert "letters ['a', 'b']" in default.stdout
    given = run_flow(flow_file, "run", "--letters", "x,y,z")
    assert given.returncode == 0 and "letters ['x', 'y', 'z']" in given.stdout
    shown = run_flow(flow_file, "run", "--help")
    assert shown.stdout.rstrip().endswith("--letters STR         str")  # no default shown
    numbers = write_flow(tmp_path, "num_flow", _flow(body.replace('default="a,b"', "default=1")))
    refused = run_flow(numbers, "check")
    assert refused.returncode == 2
    assert refused.stderr == (
        "error: flow 'BadFlow', parameter 'letters': separator=',' needs type str, not int. "
        "A separator splits a str value into a list of strings: give a non-empty "
        "string, e.g. separator=',', and leave type as str.\n"
    )


def test_parameter_named_like_an_option(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    body = GOOD_BODY.replace('Parameter("count", default=1)', 'Parameter("max-workers", default=1)')
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "run", "--needed", "x")
    _assert_rejected(result, datastore, "parameter 'max-workers' has the name of an option")


@pytest.mark.parametrize("args", [["run", "--needed", "x"], ["resume"]])
def test_a_run_id_file_in_a_missing_folder_is_refused_before_running(
    args: list[str], run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    subcommand = args[0]
    flow_file = write_flow(tmp_path, "bad_flow", _flow(GOOD_BODY))
    missing = tmp_path / "no" / "such" / "run-id"
    result = run_flow(flow_file, *args, "--run-id-file", str(missing))
    _assert_rejected(
        result,
        datastore,
        f"error: {subcommand}: --run-id-file='{missing}' is in a folder that does not exist "
        f"({missing.parent}). Create the folder first (mkdir -p {missing.parent}), or pass a "
        "path in an existing one.",
    )


# --- @batch options a new user gets wrong ----------------------------------------------------

BATCH_FLOW = """
from batchwright import FlowSpec, batch, step


class BadFlow(FlowSpec):
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
    BadFlow()
"""

IMAGE_FIX = (
    "Give an image reference such as '123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.4' "
    "or 'python:3.12-slim': [registry[:port]/]path[:tag][@sha256:<hex>], the path in "
    "lowercase letters and digits separated by '/', '.', '_', '__' or '-'."
)

BATCH_REFUSALS = {
    "image not a reference": (
        "image='x!!'",
        [],
        f"error: flow 'BadFlow', step 'work', @batch: image='x!!' is not a Docker image "
        f"reference. {IMAGE_FIX}",
    ),
    "image in capitals": (
        "image='MyOrg/Train:Latest'",
        [],
        "error: flow 'BadFlow', step 'work', @batch: image='MyOrg/Train:Latest' has capital "
        "letters in its repository 'MyOrg/Train'; Docker takes lowercase only. Write the "
        "repository in lowercase: 'myorg/train:Latest'.",
    ),
    "gpu with ephemeral storage": (
        "gpu=1, ephemeral_storage=50",
        [],
        "error: flow 'BadFlow', step 'work', @batch: ephemeral_storage=50 contradicts gpu=1: "
        "ephemeral_storage exists only on Fargate and gpu exists only on EC2, so no queue can "
        "run the step. Drop gpu to run on Fargate, or drop ephemeral_storage to run on EC2.",
    ),
    "fractional cpu with privileged": (
        "cpu=0.5, privileged=True",
        [],
        "error: flow 'BadFlow', step 'work', @batch: cpu=0.5 contradicts privileged=True: "
        "fractional vCPUs exist only on Fargate and privileged exists only on EC2, so no queue "
        "can run the step. Drop privileged to run on Fargate, or use cpu=1 to run on EC2.",
    ),
    "memory nothing offers, no environment": (
        "memory=10**7",
        ["--run-batch-locally"],
        "error: step 'work', @batch: memory=10000000 is more than any EC2 instance type AWS "
        "Batch runs offers a job (at most 1992262 MiB, on p5.48xlarge). Lower memory to at most "
        "1992262.",
    ),
    "fractional cpu beyond fargate, no environment": (
        "cpu=0.5, memory=200000",
        ["--run-batch-locally"],
        "error: step 'work', @batch: memory=200000 exceeds Fargate's largest size (16 vCPU / "
        "122880 MiB), and cpu=0.5 runs on Fargate only. Lower memory to at most 122880, or use "
        "cpu=1 to run on EC2.",
    ),
}


@pytest.mark.parametrize("case", sorted(BATCH_REFUSALS))
def test_batch_option_mistakes_are_refused_before_running(
    case: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    attributes, args, message = BATCH_REFUSALS[case]
    flow_file = write_flow(tmp_path, "bad_flow", BATCH_FLOW.format(attributes=attributes))
    result = run_flow(flow_file, "run", *args)
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output and "started" not in result.stdout
    # The refusal is the error's first line (the CLI may add how it looked for an
    # environment when it found none).
    assert result.stderr.splitlines()[0] == message, result.output
    assert not (datastore / "BadFlow").exists()


def test_a_bad_image_on_the_command_line_names_its_source(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "bad_flow", BATCH_FLOW.format(attributes=""))
    result = run_flow(flow_file, "run", "--with", "batch:image=MyOrg/Train:Latest")
    _assert_rejected(
        result,
        datastore,
        "--with batch: image='MyOrg/Train:Latest' has capital letters in its repository "
        "'MyOrg/Train'; Docker takes lowercase only. Write the repository in lowercase: "
        "'myorg/train:Latest'.",
    )


def _environment_file(tmp_path: Path) -> Path:
    """A 'cdk deploy --outputs-file' document for a small environment named Sample."""
    from batchwright.environment.descriptor import (
        ComputeEnvironmentDescription,
        EnvironmentDescriptor,
        QueueDescription,
    )

    queues = tuple(
        QueueDescription(
            key=key,
            name=f"sample-{key}",
            arn=f"arn:aws:batch:us-east-1:123456789012:job-queue/sample-{key}",
            platform=platform,  # type: ignore[arg-type]
            accelerator=accelerator,  # type: ignore[arg-type]
            compute_environments=(
                ComputeEnvironmentDescription(
                    arn=f"arn:aws:batch:us-east-1:123456789012:compute-environment/{key}",
                    platform=platform,  # type: ignore[arg-type]
                    order=1,
                    max_vcpus=64,
                    instance_types=types,
                    accelerator=accelerator,  # type: ignore[arg-type]
                ),
            ),
        )
        for key, platform, types, accelerator in (
            ("cpu", "EC2", ("c5.large", "c5.xlarge"), "none"),
            ("fargate", "FARGATE", (), "none"),
            ("gpu", "EC2", ("g5.xlarge",), "gpu"),
        )
    )
    env = EnvironmentDescriptor(
        name="Sample",
        region="us-east-1",
        bucket="bucket",
        prefix="bw",
        job_role_arn="arn:aws:iam::123456789012:role/job",
        execution_role_arn="arn:aws:iam::123456789012:role/execution",
        log_group="/bw",
        default_image="python:3.12-slim",
        queues=queues,
    )
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"Sample": {"BatchwrightEnvironment": env.to_json()}}))
    return path


@pytest.mark.parametrize(("queue", "guess"), [("cpus", "'cpu'"), ("gpu-large", "'gpu'")])
def test_a_queue_key_the_environment_lacks_is_refused_with_a_guess(
    queue: str, guess: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "bad_flow", BATCH_FLOW.format(attributes=f"queue={queue!r}"))
    outputs = str(_environment_file(tmp_path))
    result = run_flow(
        flow_file,
        "run",
        "--run-batch-locally",
        "--environment",
        "Sample",
        "--outputs-file",
        outputs,
    )
    message = (
        f"error: step 'work', @batch: queue={queue!r} names no queue of environment 'Sample' "
        f"(its queues: cpu, fargate, gpu). Did you mean {guess}? Give one of the environment's "
        "queue keys, drop queue= to let batchwright route the step, or give the full ARN of a "
        "queue outside the environment."
    )
    _assert_rejected(result, datastore, message)


def test_a_request_no_queue_holds_shows_the_largest_offers(
    run_flow: RunFlow, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "bad_flow", BATCH_FLOW.format(attributes="memory=150000"))
    outputs = str(_environment_file(tmp_path))
    result = run_flow(
        flow_file,
        "run",
        "--run-batch-locally",
        "--environment",
        "Sample",
        "--outputs-file",
        outputs,
    )
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr == (
        "error: step 'work', @batch: 1 vCPU / 150000 MiB fits no queue that could run it. The "
        "largest request each takes:\n"
        "  queue    platform  largest request       instance type\n"
        "  cpu      EC2       4 vCPU / 7750 MiB     c5.xlarge\n"
        "  fargate  FARGATE   16 vCPU / 122880 MiB  (Fargate)\n"
        "Lower memory, or add a larger instance type to one of these queues.\n"
    )


# --- @batch(secrets=...) ---------------------------------------------------------------------

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
SECRET_REFUSALS = {
    "the secret itself": (
        "secrets={'DB_PASSWORD': 'hunter2'}",
        "error: flow 'BadFlow', step 'work', @batch: secrets={'DB_PASSWORD': 'hunter2'} has "
        "'DB_PASSWORD': 'hunter2', which is neither a Secrets Manager secret ARN nor an SSM "
        "parameter. Give a secret's ARN ('arn:aws:secretsmanager:<region>:<account>:secret:"
        "<name>', optionally followed by ':<json-key>:<version-stage>:<version-id>'), a "
        "parameter's ARN ('arn:aws:ssm:<region>:<account>:parameter/<name>') or the name of a "
        "parameter in the job's region, starting with '/'. Never the secret itself.",
    ),
    "a reserved name": (
        f"secrets={{'AWS_REGION': {SECRET_ARN!r}}}",
        f"error: flow 'BadFlow', step 'work', @batch: secrets={{'AWS_REGION': {SECRET_ARN!r}}} "
        "has the variable name 'AWS_REGION', which AWS Batch, ECS or batchwright sets in every "
        "job. Rename the variable (e.g. 'APP_AWS_REGION'): names starting with AWS_ or ECS_ or "
        "BATCHWRIGHT_, and PYTHONPATH, PYTHONUNBUFFERED, TMPDIR, are reserved.",
    ),
    "not a mapping": (
        "secrets='DB_PASSWORD'",
        "error: flow 'BadFlow', step 'work', @batch: secrets='DB_PASSWORD' is not a mapping. "
        "Give a dict of environment variable names to secret ARNs or SSM parameters, e.g. "
        f"{{'DB_PASSWORD': {SECRET_ARN!r}, 'API_TOKEN': '/team/token'}} (on the command line, "
        """as JSON: batch:secrets='{"API_TOKEN":"/team/token"}').""",
    ),
}


@pytest.mark.parametrize("case", sorted(SECRET_REFUSALS))
def test_bad_secrets_are_refused_before_running(
    case: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    attributes, message = SECRET_REFUSALS[case]
    flow_file = write_flow(tmp_path, "bad_flow", BATCH_FLOW.format(attributes=attributes))
    for command in (("run", "--run-batch-locally"), ("plan",)):
        result = run_flow(flow_file, *command)
        assert result.returncode == 2, result.output
        assert "Traceback" not in result.output and "started" not in result.stdout
        assert result.stderr.splitlines()[0] == message, result.output
    assert not (datastore / "BadFlow").exists()


SECRET_FLOW = f"""
import os

from batchwright import FlowSpec, batch, step


class SecretFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @batch(secrets={{"DB_PASSWORD": "{SECRET_ARN}", "API_TOKEN": "/team/token"}})
    @step
    def work(self):
        print("token:", os.environ["API_TOKEN"])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SecretFlow()
"""


def test_a_local_run_needs_the_secrets_in_the_shell(
    run_flow: RunFlow, datastore: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = write_flow(tmp_path, "secret_flow", SECRET_FLOW)
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    monkeypatch.setenv("API_TOKEN", "from-the-shell")
    refused = run_flow(flow_file, "run", "--run-batch-locally")
    assert refused.returncode == 2, refused.output
    assert "Traceback" not in refused.output and "started" not in refused.stdout
    assert refused.stderr.splitlines()[0] == (
        "error: flow 'SecretFlow', step 'work', @batch: secrets API_TOKEN, DB_PASSWORD are "
        "fetched by ECS when the job starts on AWS Batch; --run-batch-locally runs the step on "
        "this machine, where nothing fetches them, and DB_PASSWORD is not set in this shell. "
        "Run the step on AWS Batch (without --run-batch-locally), or set DB_PASSWORD in your "
        "shell for local runs."
    )
    assert not (datastore / "SecretFlow").exists()

    monkeypatch.setenv("DB_PASSWORD", "also-from-the-shell")
    ran = run_flow(flow_file, "run", "--run-batch-locally")
    assert ran.returncode == 0, ran.output
    assert "token: from-the-shell" in ran.stdout
    assert "secrets API_TOKEN, DB_PASSWORD come from this shell's environment" in ran.stdout
