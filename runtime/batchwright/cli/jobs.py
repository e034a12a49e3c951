"""``batchwright jobs list|kill``: find batchwright's jobs on an environment's queues.

Jobs are found by the tags every batchwright job carries (``batchwright:flow``,
``batchwright:run``, ``batchwright:step``, ``batchwright:task``) on the queues of the
environment (or the queues given with ``--queue``): ListJobs per queue and active state,
then DescribeJobs 100 ids at a time for the tags. ``kill`` terminates what ``list`` shows.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchwright import aws
from batchwright.batch.options import TAG_PREFIX
from batchwright.console import Console
from batchwright.errors import BatchwrightError, UserInputError

#: The states of a job that is still waiting or running.
ACTIVE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


def register(sub: Any) -> None:
    """Adds the ``jobs`` subcommand group."""
    parser = sub.add_parser("jobs", help="list or terminate batchwright's jobs on AWS Batch")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, text, handler in (
        ("list", "show active jobs of flows and runs", _list),
        ("kill", "terminate active jobs of flows and runs", _kill),
    ):
        child = verbs.add_parser(verb, help=text, description=text)
        child.add_argument("--environment", help="stack name of the environment")
        child.add_argument("--outputs-file", help="a `cdk deploy --outputs-file` JSON")
        child.add_argument(
            "--queue", action="append", default=[], help="a queue name or ARN (repeatable)"
        )
        child.add_argument("--flow", help="only jobs of this flow")
        child.add_argument("--run", help="only jobs of this run id")
        child.set_defaults(handler=handler)


def _queues(args: argparse.Namespace) -> list[str]:
    if args.queue:
        return list(args.queue)
    from batchwright.environment.discovery import find_environment

    env = find_environment(
        args.environment, cwd=Path.cwd(), outputs_file=args.outputs_file, allow_static=False
    )
    if env is None:
        raise UserInputError(
            "jobs: no environment named: pass --environment NAME, set "
            "BATCHWRIGHT_ENVIRONMENT, or give --queue QUEUE."
        )
    return [q.arn for q in env.queues]


def find_jobs(
    batch: Any, queues: list[str], flow: str | None, run: str | None
) -> Iterator[dict[str, Any]]:
    """Active batchwright jobs on ``queues`` whose tags match ``flow`` and ``run``."""
    ids: list[str] = []
    paginator = batch.get_paginator("list_jobs")
    for queue in queues:
        for state in ACTIVE_STATES:
            for page in paginator.paginate(jobQueue=queue, jobStatus=state):
                ids.extend(summary["jobId"] for summary in page["jobSummaryList"])
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), 100):
        for job in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
            tags = job.get("tags") or {}
            if TAG_PREFIX + "flow" not in tags:
                continue
            if flow and tags.get(TAG_PREFIX + "flow") != flow:
                continue
            if run and tags.get(TAG_PREFIX + "run") != run:
                continue
            yield job


def _row(job: dict[str, Any]) -> list[str]:
    tags = job.get("tags") or {}
    pathspec = "/".join(tags.get(TAG_PREFIX + key, "?") for key in ("flow", "run", "step", "task"))
    return [job["jobId"], job["status"], pathspec, job.get("jobQueue", "").rsplit("/", 1)[-1]]


def _unreachable(verb: str, what: str, error: Exception, done: str = "") -> BatchwrightError:
    """The error of an AWS call that failed: what was asked, the answer, what was done
    before it, what to check. Exit code 1: AWS failing is not bad input."""
    return BatchwrightError(
        f"jobs {verb}: could not {what} ({aws.describe_error(error)}){done}. Check the "
        "AWS region, credentials and network (or AWS_ENDPOINT_URL for the local AWS), then "
        "try again."
    )


def _batch_client(verb: str) -> Any:
    from botocore.exceptions import BotoCoreError

    try:
        return aws.client("batch")
    except BotoCoreError as error:  # e.g. no region configured
        raise _unreachable(verb, "make an AWS Batch client", error) from None


def _find(batch: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The jobs ``list`` and ``kill`` act on.

    Raises:
        BatchwrightError: AWS Batch could not be asked (exit code 1: not bad input).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    queues = _queues(args)
    try:
        return list(find_jobs(batch, queues, args.flow, args.run))
    except (BotoCoreError, ClientError) as error:
        raise _unreachable(
            args.verb, f"list the jobs of queue(s) {', '.join(queues)} on AWS Batch", error
        ) from None


def _list(args: argparse.Namespace, console: Console) -> int:
    jobs = _find(_batch_client("list"), args)
    if not jobs:
        console.info("no active batchwright jobs")
        return 0
    console.table(["JOB ID", "STATUS", "FLOW/RUN/STEP/TASK", "QUEUE"], [_row(j) for j in jobs])
    return 0


def _kill(args: argparse.Namespace, console: Console) -> int:
    if not (args.flow or args.run):
        raise UserInputError(
            "jobs kill: name what to stop with --flow FLOW and/or --run RUN_ID "
            "(see `batchwright jobs list`)."
        )
    from botocore.exceptions import BotoCoreError, ClientError

    batch = _batch_client("kill")
    jobs = _find(batch, args)
    for done, job in enumerate(jobs):
        try:
            batch.terminate_job(jobId=job["jobId"], reason="batchwright jobs kill")
        except (BotoCoreError, ClientError) as error:
            raise _unreachable(
                "kill",
                f"terminate job {job['jobId']} on AWS Batch",
                error,
                f"; {done} of the {len(jobs)} job(s) found were terminated before it",
            ) from None
        console.info(f"terminated {' '.join(_row(job))}")
    console.info(f"{len(jobs)} job(s) terminated")
    return 0
