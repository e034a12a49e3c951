"""The run report: one self-contained HTML file with the run's timeline, a table per step
and the run's totals, with estimated costs.

The timeline is drawn with Plotly (its JavaScript is embedded in the page, so the file
opens offline and fetches nothing): one horizontal bar per task attempt, its waiting time
(submitted to started) apart from its running time, coloured by how it ended; steps are
grouped. Past :data:`MAX_BARS` attempts the bars would be unreadable, so the timeline
shows, per step, how many attempts were waiting and running over time instead.

Costs come from :mod:`batchwright.costs`: estimates from a dated table of list prices,
never a bill.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from batchwright.costs import Estimate, PriceTable, estimate, price_table
from batchwright.timings import PLANNED, AttemptTiming, steps_in_order

#: Above this many attempts the timeline aggregates (counts over time per step).
MAX_BARS = 1500
#: Points of each aggregated curve.
AGGREGATE_POINTS = 400
#: The page element the timeline is drawn in (the browser test looks for it).
TIMELINE_ID = "timeline"
COLOURS = {
    "waiting": "#c9ced6",
    "succeeded": "#2e8b57",
    "retried": "#e69f00",
    "failed": "#c0392b",
}


@dataclass(frozen=True)
class Priced:
    """One attempt and its estimated cost (``None``: ran locally, or no price known)."""

    timing: AttemptTiming
    estimate: Estimate | None
    #: It failed, and a later attempt (or submission) of the same task followed.
    retried: bool = False

    @property
    def cost(self) -> float | None:
        """Estimated cost of its running time, in USD."""
        if self.estimate is None:
            return None
        return self.estimate.cost(self.timing.running_seconds)

    @property
    def outcome(self) -> str:
        """``succeeded``, ``retried`` (failed, and a later attempt followed) or ``failed``."""
        return "retried" if self.retried else self.timing.state


@dataclass
class StepSummary:
    """The row of one step in the report's table."""

    step: str
    tasks: int = 0
    attempts: int = 0
    retries: int = 0
    #: Submissions again of the same attempt after lost capacity (Spot reclaims).
    resubmissions: int = 0
    running: list[float] = field(default_factory=list)
    waiting: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    cost: float = 0.0
    spot_cost: float = 0.0
    unpriced: int = 0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def price_attempts(
    timings: Iterable[AttemptTiming], table: PriceTable | None = None
) -> list[Priced]:
    """Each attempt with its hourly estimate; an attempt that failed and was followed by
    another attempt of the same task is marked ``retried``."""
    table = table or price_table()
    timings = list(timings)
    last: dict[tuple[str, str], tuple[int, int]] = {}
    for t in timings:
        key = (t.step, t.task_id)
        last[key] = max(last.get(key, (-1, -1)), (t.attempt, t.resubmission))
    priced = []
    for t in timings:
        footprint = t.footprint
        rate = estimate(footprint, table) if footprint is not None else None
        retried = t.state == "failed" and (t.attempt, t.resubmission) < last[(t.step, t.task_id)]
        priced.append(Priced(t, rate, retried))
    return priced


def summarize(priced: Sequence[Priced]) -> list[StepSummary]:
    """One summary per step, in the order the steps first ran."""
    rows = {step: StepSummary(step) for step in steps_in_order(p.timing for p in priced)}
    tasks: dict[str, set[str]] = {step: set() for step in rows}
    for p in priced:
        t, row = p.timing, rows[p.timing.step]
        tasks[t.step].add(t.task_id)
        row.attempts += 1
        row.retries += t.attempt > 0 and t.resubmission == 0
        row.resubmissions += t.resubmission > 0
        row.waiting.append(t.waiting_seconds)
        if t.started_at is not None:
            row.running.append(t.running_seconds)
        if t.failure:
            row.failures[t.failure] += 1
        cost = p.cost
        if cost is None:
            row.unpriced += t.platform is not None
        elif p.estimate is not None and p.estimate.spot:
            row.spot_cost += cost
        else:
            row.cost += cost
    for step, row in rows.items():
        row.tasks = len(tasks[step])
    return list(rows.values())


# -- the timeline ----------------------------------------------------------------------


def timeline_figure(priced: Sequence[Priced], origin: float) -> Any:
    """The Plotly figure of the timeline: bars per attempt, or counts over time per step
    past :data:`MAX_BARS` attempts. Times are seconds since ``origin``."""
    import plotly.graph_objects as go

    if len(priced) > MAX_BARS:
        return _aggregate_figure(priced, origin)
    steps = steps_in_order(p.timing for p in priced)
    ordered = sorted(
        priced, key=lambda p: (steps.index(p.timing.step), p.timing.submitted_at, p.timing.task_id)
    )
    labels = [_bar_label(p.timing) for p in ordered]
    figure = go.Figure()
    figure.add_trace(
        go.Bar(
            name="waiting",
            orientation="h",
            y=labels,
            base=[p.timing.submitted_at - origin for p in ordered],
            x=[p.timing.waiting_seconds for p in ordered],
            marker_color=COLOURS["waiting"],
            hovertext=[_hover(p) for p in ordered],
            hoverinfo="text",
        )
    )
    for outcome in ("succeeded", "retried", "failed"):
        chosen = [p for p in ordered if p.outcome == outcome]
        if not chosen:
            continue
        figure.add_trace(
            go.Bar(
                name=f"running, {outcome}" if outcome != "succeeded" else "running",
                orientation="h",
                y=[_bar_label(p.timing) for p in chosen],
                base=[_start(p.timing) - origin for p in chosen],
                # A bar too short to see still shows (a failure at start-up matters).
                x=[max(p.timing.running_seconds, 0.001) for p in chosen],
                marker_color=COLOURS[outcome],
                hovertext=[_hover(p) for p in chosen],
                hoverinfo="text",
                meta=outcome,
            )
        )
    figure.update_layout(
        barmode="overlay",
        height=min(240 + 18 * len(labels), 20000),
        yaxis={"categoryorder": "array", "categoryarray": labels[::-1], "title": None},
        xaxis={"title": "seconds since the run started"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
    )
    return figure


def _start(timing: AttemptTiming) -> float:
    return timing.started_at if timing.started_at is not None else timing.stopped_at


def _bar_label(timing: AttemptTiming) -> str:
    attempt = f" #{timing.attempt}" if timing.attempt else ""
    again = f" (again x{timing.resubmission})" if timing.resubmission else ""
    return f"{timing.step}/{timing.task_id}{attempt}{again}"


def _hover(p: Priced) -> str:
    t = p.timing
    lines = [
        f"<b>{html.escape(t.pathspec)}</b> attempt {t.attempt}",
        f"{p.outcome}" + (f": {html.escape(t.failure)}" if t.failure else ""),
        f"waited {t.waiting_seconds:.1f} s, ran {t.running_seconds:.1f} s",
    ]
    if t.queue:
        lines.append(f"queue {html.escape(t.queue)}")
    if t.instance_type:
        source = " (plan's estimate)" if t.instance_type_source == PLANNED else ""
        lines.append(f"instance {html.escape(t.instance_type)}{source}")
    if t.exit_code is not None:
        lines.append(f"exit code {t.exit_code}")
    if p.estimate is not None:
        lines.append(f"~${p.cost:.4f} ({html.escape(p.estimate.label)})")
    return "<br>".join(lines)


def _aggregate_figure(priced: Sequence[Priced], origin: float) -> Any:
    import plotly.graph_objects as go

    end = max(p.timing.stopped_at for p in priced)
    span = max(end - origin, 1e-3)
    grid = [origin + span * i / (AGGREGATE_POINTS - 1) for i in range(AGGREGATE_POINTS)]
    figure = go.Figure()
    for step in steps_in_order(p.timing for p in priced):
        chosen = [p.timing for p in priced if p.timing.step == step]
        for state, start, stop in (
            ("waiting", lambda t: t.submitted_at, _start),
            ("running", _start, lambda t: t.stopped_at if t.started_at is not None else None),
        ):
            counts = _counts_over(grid, [(start(t), stop(t)) for t in chosen])
            figure.add_trace(
                go.Scatter(
                    name=f"{step}: {state}",
                    x=[g - origin for g in grid],
                    y=counts,
                    mode="lines",
                    line={"shape": "hv", "dash": "dot" if state == "waiting" else "solid"},
                )
            )
    figure.update_layout(
        height=520,
        xaxis={"title": "seconds since the run started"},
        yaxis={"title": "attempts"},
        title=f"{len(priced):,} attempts: attempts waiting and running per step, over time",
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
    )
    return figure


def _counts_over(grid: Sequence[float], spans: Sequence[tuple[float, float | None]]) -> list[int]:
    """How many of ``spans`` cover each grid point (a sweep over sorted edges)."""
    import bisect

    starts = sorted(s for s, e in spans if e is not None)
    ends = sorted(e for s, e in spans if e is not None)
    return [bisect.bisect_right(starts, g) - bisect.bisect_right(ends, g) for g in grid]


# -- the page --------------------------------------------------------------------------


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _money(value: float) -> str:
    if value < 0.01:
        return f"${value:.6f}"  # seconds of a small task: cents would say nothing
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _step_table(rows: Sequence[StepSummary]) -> str:
    head = (
        "<tr><th>step</th><th>tasks</th><th>attempts</th><th>running p50</th>"
        "<th>running p95</th><th>waiting p50</th><th>waiting total</th><th>retries</th>"
        "<th>resubmitted</th><th>failures by class</th><th>estimated cost</th></tr>"
    )
    body = []
    for row in rows:
        failures = ", ".join(f"{kind} x{n}" for kind, n in sorted(row.failures.items())) or "-"
        cost = _cost_text(row.cost, row.spot_cost, row.unpriced)
        cells = [
            row.step,
            str(row.tasks),
            str(row.attempts),
            _seconds(percentile(row.running, 50)),
            _seconds(percentile(row.running, 95)),
            _seconds(percentile(row.waiting, 50)),
            _seconds(sum(row.waiting)),
            str(row.retries),
            str(row.resubmissions),
            failures,
            cost,
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f'<table id="steps"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _cost_text(cost: float, spot_cost: float, unpriced: int) -> str:
    parts = []
    if cost:
        parts.append(_money(cost))
    if spot_cost:
        parts.append(f"~{_money(spot_cost)} Spot est.")
    if unpriced:
        parts.append(f"{unpriced} attempt(s) without a price")
    return " + ".join(parts) if parts else "- (ran locally)"


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_report(
    flow: str,
    run_id: str,
    record: Mapping[str, Any],
    timings: Sequence[AttemptTiming],
    table: PriceTable | None = None,
) -> str:
    """The report of one run as a complete HTML document (Plotly embedded)."""
    table = table or price_table()
    priced = price_attempts(timings, table)
    rows = summarize(priced)
    submitted = [t.submitted_at for t in timings]
    recorded = [float(record["started_at"])] if record.get("started_at") else []
    started = min(recorded or submitted, default=0.0)
    finished = record.get("finished_at")
    # A resumed run follows jobs its origin run submitted: they may predate its start.
    figure = timeline_figure(priced, min(recorded + submitted)) if priced else None
    timeline = (
        figure.to_html(
            full_html=False,
            include_plotlyjs=True,
            div_id=TIMELINE_ID,
            config={"displaylogo": False, "responsive": True},
        )
        if figure is not None
        else f'<p id="{TIMELINE_ID}">No task attempts were recorded for this run.</p>'
    )
    total_cost = sum(r.cost for r in rows)
    total_spot = sum(r.spot_cost for r in rows)
    unpriced = sum(r.unpriced for r in rows)
    totals = [
        ("status", str(record.get("status", "unknown"))),
        ("started", _when(record.get("started_at"))),
        (
            "wall time",
            _seconds(float(finished) - started) if finished else "- (not finished)",
        ),
        ("tasks", str(sum(r.tasks for r in rows))),
        ("attempts", str(len(priced))),
        ("retries", str(sum(r.retries for r in rows))),
        ("failed attempts", str(sum(sum(r.failures.values()) for r in rows))),
        ("time waiting (sum)", _seconds(sum(sum(r.waiting) for r in rows))),
        ("time running (sum)", _seconds(sum(sum(r.running) for r in rows))),
        ("estimated cost", _cost_text(total_cost, total_spot, unpriced)),
    ]
    origin = record.get("origin_run_id")
    if origin:
        totals.append(("resumed from", f"run {origin} (tasks reused from it are not shown)"))
    totals_html = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in totals
    )
    sources = html.escape("\n".join(table.notes))
    title = f"{flow}/{run_id}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>batchwright report: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccd; padding: 4px 8px; text-align: left; font-size: 14px; }}
thead th {{ background: #eef; }}
#totals th {{ background: #f6f6fa; }}
.note {{ color: #555; font-size: 13px; max-width: 70em; }}
</style></head>
<body>
<h1>Run {html.escape(title)}</h1>
<table id="totals">{totals_html}</table>
<h2>Timeline</h2>
<p class="note">One bar per task attempt: grey while it waited (submitted, not yet started),
then coloured while it ran: green when it succeeded, amber when it failed and a retry
followed, red when it failed for good.</p>
{timeline}
<h2>Steps</h2>
{_step_table(rows)}
<h2>About the cost figures</h2>
<p class="note">Estimates, not a bill: each attempt's running time times its share of the
instance (the largest of its vCPU, memory and GPU fractions) times the instance's On-Demand
list price, or Fargate's per-vCPU and per-GB rates. Spot figures assume a saving and are
labelled as estimates. Where AWS did not report the instance type, the plan's smallest
fitting type stands in. Prices dated {html.escape(table.date or "unknown")}.</p>
<details class="note"><summary>The price table: its sources and dates</summary>
<pre>{sources}</pre></details>
</body></html>
"""
