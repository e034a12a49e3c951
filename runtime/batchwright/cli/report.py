"""``batchwright report FLOW[/RUN_ID]`` (and ``python flow.py report [RUN_ID]``): write a
run's report, one self-contained HTML file (see :mod:`batchwright.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from batchwright.console import Console
from batchwright.errors import UserInputError


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """``--output`` and ``--datastore-root``, shared by both report commands."""
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="where to write the HTML (default: FLOW-RUN_ID-report.html here)",
    )
    parser.add_argument(
        "--datastore-root",
        metavar="ROOT",
        help="folder or s3://bucket/prefix holding the run (default: where the client "
        "looks: $BATCHWRIGHT_DATASTORE_ROOT, the environment's datastore, ./.batchwright)",
    )


def write_report(
    flow: str,
    run_id: str | None,
    *,
    datastore_root: str | None,
    output: str | None,
    console: Console,
) -> int:
    """Writes the report of ``flow``'s run ``run_id`` (its latest run when ``None``)."""
    from batchwright.client import find_datastore
    from batchwright.report import render_report
    from batchwright.timings import read_timeline

    store = find_datastore(flow, datastore_root, run_id)
    where = store.storage.root
    if run_id is None:
        runs = store.list_runs()
        if not runs:
            raise UserInputError(
                f"report: flow '{flow}' has no runs in {where}. Run it first, or pass "
                "--datastore-root with where its runs are."
            )
        run_id = runs[-1]
    record = store.read_run(run_id)
    if record is None:
        latest = store.list_runs()[-3:]
        hint = f" Its latest runs: {', '.join(latest)}." if latest else ""
        raise UserInputError(
            f"report: flow '{flow}' has no run '{run_id}' in {where}.{hint} Pass one of its "
            "run ids, or --datastore-root with where the run is."
        )
    target = Path(output or f"{flow}-{run_id}-report.html")
    page = render_report(flow, run_id, record, read_timeline(store, run_id))
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        raise UserInputError(
            f"report --output {str(target)!r}: cannot write it ({error.strerror}). Pass a "
            "writable path."
        ) from error
    console.line(f"Wrote the report of {flow}/{run_id} to {target}")
    return 0


def register(sub: Any) -> None:
    """Adds the ``report`` subcommand."""
    parser = sub.add_parser(
        "report",
        help="write a run's report: timeline, step table, estimated costs (one HTML file)",
    )
    parser.add_argument(
        "run",
        metavar="FLOW[/RUN_ID]",
        help="the flow's name (its latest run) or a run's pathspec, e.g. TrainFlow/1234",
    )
    add_report_options(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, console: Console) -> int:
    parts = args.run.strip("/").split("/")
    if len(parts) > 2 or not parts[0]:
        raise UserInputError(
            f"report {args.run}: expected FLOW or FLOW/RUN_ID (e.g. report TrainFlow/1234)."
        )
    return write_report(
        parts[0],
        parts[1] if len(parts) == 2 else None,
        datastore_root=args.datastore_root,
        output=args.output,
        console=console,
    )
