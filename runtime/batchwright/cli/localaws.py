"""``batchwright localaws up|down|status|env``: the local AWS for tests and demos."""

from __future__ import annotations

import argparse
from typing import Any

from batchwright import localaws
from batchwright.console import Console


def register(sub: Any) -> None:
    """Adds the ``localaws`` subcommand group."""
    parser = sub.add_parser(
        "localaws",
        help="start or stop the local AWS (moto server + Docker engine)",
        description=(
            "The local AWS runs Batch jobs in real containers: a Docker engine, a job "
            "image built offline and the moto server on a loopback port."
        ),
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("up", help="start it (installs Docker/mmdebstrap when missing)").set_defaults(
        handler=_up
    )
    verbs.add_parser("down", help="stop every process `up` started").set_defaults(handler=_down)
    verbs.add_parser("status", help="say whether it runs, and where").set_defaults(handler=_status)
    verbs.add_parser(
        "env", help="print `export` lines that point boto3 and flows at it"
    ).set_defaults(handler=_env)


def _up(args: argparse.Namespace, console: Console) -> int:
    local, started = localaws.up(log=console.info)
    console.info(
        ("started" if started else "already running")
        + f": endpoint {local.endpoint}, region {local.region}, job image {local.image}"
    )
    console.info('point a shell at it with: eval "$(batchwright localaws env)"')
    return 0


def _down(args: argparse.Namespace, console: Console) -> int:
    stopped = localaws.down(log=console.info)
    console.info("stopped" if stopped else "the local AWS was not running")
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    local = localaws.current()
    if local is None:
        console.info("the local AWS is not running (start it with `batchwright localaws up`)")
        return 1
    console.info(f"running: endpoint {local.endpoint}, region {local.region}, image {local.image}")
    return 0


def _env(args: argparse.Namespace, console: Console) -> int:
    local = localaws.current()
    if local is None:
        console.error("the local AWS is not running; start it with `batchwright localaws up`")
        return 1
    for key, value in local.environment().items():
        console.line(f"export {key}={value}")
    return 0
