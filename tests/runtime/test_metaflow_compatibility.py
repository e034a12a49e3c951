"""A flow written for Metaflow runs unchanged apart from its import line."""

from __future__ import annotations

from pathlib import Path

from batchwright import Flow

from ._support import TEST_FLOWS, RunFlow

METAFLOW_IMPORT = "from metaflow import "


def test_metaflow_flow_runs_with_only_the_import_changed(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    original = (TEST_FLOWS / "metaflow_style_flow.py").read_text()
    assert original.count(METAFLOW_IMPORT) == 1
    converted = original.replace(METAFLOW_IMPORT, "from batchwright import ")
    changed = [
        (a, b) for a, b in zip(original.splitlines(), converted.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1  # exactly the import line
    flow_file = tmp_path / "movie_stats.py"
    flow_file.write_text(converted)
    (tmp_path / "movies.csv").write_text(
        "title,genre\nAlien,scifi\nHeat,crime\nDune,scifi\nUp,animation\nArrival,scifi\n"
    )

    result = run_flow(flow_file, "run", "--top", "2", "--extra", '["western"]')
    assert result.returncode == 0, result.output
    run = Flow("MovieStatsFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    assert run.data.best == [("scifi", 4.5), ("animation", 1.5)]
    assert run.data.title_count == 5
    assert run.data.longest == "Arrival"
    assert len(run["score"].tasks()) == 4  # three genres in the file plus the extra one
    assert "MovieStatsFlow parsed 5 rows" in run["start"].task.stdout
