"""``batchwright jobdefs list`` and ``batchwright jobdefs prune``: the job definitions the
runtime registered, and the cleanup of those no recent run used.

Only batchwright's own definitions are shown or touched: named ``batchwright-<hash>`` and
tagged with that hash (:func:`batchwright.batch.cleanup.owned`). ``prune`` is a dry run
unless ``--yes`` is given, and keeps every definition an active job runs with or a
deployed state machine names (its executions stamp no use).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from batchwright import aws
from batchwright.batch.cleanup import (
    OwnedDefinition,
    Verdict,
    decide,
    owned,
    parse_age,
    state_machine_definitions,
)
from batchwright.cli.jobs import ACTIVE_STATES
from batchwright.console import Console
from batchwright.errors import BatchwrightError, UserInputError

DEFAULT_OLDER_THAN = "30d"


def register(sub: Any) -> None:
    """Adds the ``jobdefs`` subcommand group."""
    parser = sub.add_parser(
        "jobdefs", help="list or prune the job definitions batchwright registered"
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser(
        "list", help="show batchwright's active job definitions and when runs last used them"
    )
    listing.set_defaults(handler=_list)
    prune = verbs.add_parser(
        "prune",
        help="deregister batchwright's job definitions no recent run used (dry run unless --yes)",
    )
    prune.add_argument(
        "--older-than",
        default=DEFAULT_OLDER_THAN,
        metavar="AGE",
        help="prune what no run used for this long, in whole days: 30d, 2w "
        f"(default {DEFAULT_OLDER_THAN})",
    )
    prune.add_argument(
        "--keep-last",
        type=int,
        default=0,
        metavar="N",
        help="always keep the N most recently used definitions (default 0)",
    )
    prune.add_argument("--yes", action="store_true", help="deregister (default: only show)")
    prune.set_defaults(handler=_prune)


def _failed(verb: str, what: str, error: Exception, done: str = "") -> BatchwrightError:
    return BatchwrightError(
        f"jobdefs {verb}: could not {what} ({aws.describe_error(error)}){done}. Check the "
        "AWS region, credentials and network (or AWS_ENDPOINT_URL for the local AWS), then "
        "try again."
    )


def owned_definitions(batch: Any) -> Iterator[OwnedDefinition]:
    """Every active job definition batchwright registered, every page of them."""
    paginator = batch.get_paginator("describe_job_definitions")
    for page in paginator.paginate(status="ACTIVE"):
        for definition in page["jobDefinitions"]:
            mine = owned(definition)
            if mine is not None:
                yield mine


def definitions_in_use(batch: Any) -> frozenset[str]:
    """The definition ARNs of every active job on every queue of the account and region."""
    in_use: set[str] = set()
    queues = batch.get_paginator("describe_job_queues")
    jobs = batch.get_paginator("list_jobs")
    for page in queues.paginate():
        for queue in page["jobQueues"]:
            for state in ACTIVE_STATES:
                for listed in jobs.paginate(jobQueue=queue["jobQueueArn"], jobStatus=state):
                    in_use.update(
                        s["jobDefinition"] for s in listed["jobSummaryList"] if "jobDefinition" in s
                    )
    return frozenset(in_use)


def definitions_deployed(stepfunctions: Any, notices: list[str]) -> dict[str, str]:
    """The job definitions every state machine of the account and region names (name ->
    a state machine's name), in one pass: ``step-functions create``'s (by name) and a
    stack's (by ARN). A state machine that cannot be read, or a listing that fails, is a
    notice in ``notices``, not a failure."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    deployed: dict[str, str] = {}
    try:
        for page in stepfunctions.get_paginator("list_state_machines").paginate():
            for machine in page.get("stateMachines", []):
                name = str(machine.get("name", ""))
                try:
                    described = stepfunctions.describe_state_machine(
                        stateMachineArn=machine["stateMachineArn"]
                    )
                    document = json.loads(described.get("definition") or "{}")
                except (BotoCoreError, ClientError, ValueError) as error:
                    notices.append(
                        f"could not read state machine {name} ({_reason(error)}): a job "
                        "definition only it uses may be listed for pruning; grant "
                        "states:DescribeStateMachine to know"
                    )
                    continue
                for definition in state_machine_definitions(document):
                    deployed.setdefault(definition, name)
    except (BotoCoreError, ClientError) as error:
        notices.append(
            f"could not list the state machines ({aws.describe_error(error)}): a job "
            "definition only a deployed flow uses may be listed for pruning; grant "
            "states:ListStateMachines and states:DescribeStateMachine to know"
        )
    return deployed


def _reason(error: Exception) -> str:
    return "not JSON" if isinstance(error, ValueError) else aws.describe_error(error)


def _client(verb: str, service: str = "batch") -> Any:
    from botocore.exceptions import BotoCoreError

    try:
        return aws.client(service)
    except BotoCoreError as error:
        raise _failed(verb, f"make an AWS {service} client", error) from None


def _rows(verdicts: list[Verdict]) -> list[list[str]]:
    return [
        [
            f"{v.definition.name}:{v.definition.revision}",
            v.definition.last_used.isoformat() if v.definition.last_used else "unknown",
            ("prune: " if v.prune else "keep: ") + v.why,
        ]
        for v in verdicts
    ]


def _list(args: argparse.Namespace, console: Console) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    batch = _client("list")
    try:
        found = list(owned_definitions(batch))
    except (BotoCoreError, ClientError) as error:
        raise _failed("list", "list the job definitions", error) from None
    if not found:
        console.info("no active job definitions registered by batchwright")
        return 0
    found.sort(key=lambda d: (d.last_used.isoformat() if d.last_used else "", d.name), reverse=True)
    console.table(
        ["DEFINITION", "LAST USED", "JOB SPEC VERSION"],
        [
            [
                f"{d.name}:{d.revision}",
                d.last_used.isoformat() if d.last_used else "unknown",
                d.spec_version or "?",
            ]
            for d in found
        ],
    )
    return 0


def _prune(args: argparse.Namespace, console: Console) -> int:
    try:
        older_than = parse_age(args.older_than)
    except ValueError as error:
        raise UserInputError(f"jobdefs prune --older-than: {error}.") from None
    if args.keep_last < 0:
        raise UserInputError(
            f"jobdefs prune --keep-last: {args.keep_last} is negative; give 0 or more."
        )
    from botocore.exceptions import BotoCoreError, ClientError

    batch = _client("prune")
    try:
        found = list(owned_definitions(batch))
        in_use = definitions_in_use(batch) if found else frozenset()
    except (BotoCoreError, ClientError) as error:
        raise _failed("prune", "list the job definitions and active jobs", error) from None
    notices: list[str] = []
    deployed = definitions_deployed(_client("prune", "stepfunctions"), notices) if found else {}
    for notice in notices:
        console.notice(notice)
    today = datetime.now(UTC).date()
    verdicts = decide(
        found,
        today=today,
        older_than=older_than,
        keep_last=args.keep_last,
        in_use=in_use,
        deployed=deployed,
    )
    if not verdicts:
        console.info("no active job definitions registered by batchwright")
        return 0
    console.table(["DEFINITION", "LAST USED", "ACTION"], _rows(verdicts))
    doomed = [v.definition for v in verdicts if v.prune]
    if not args.yes:
        console.info(
            f"dry run: {len(doomed)} of {len(verdicts)} definition(s) would be deregistered; "
            "pass --yes to deregister them"
        )
        return 0
    for done, definition in enumerate(doomed):
        try:
            batch.deregister_job_definition(jobDefinition=definition.arn)
        except (BotoCoreError, ClientError) as error:
            raise _failed(
                "prune",
                f"deregister {definition.name}:{definition.revision}",
                error,
                f"; {done} of {len(doomed)} were deregistered before it",
            ) from None
    console.info(f"{len(doomed)} job definition(s) deregistered")
    return 0
