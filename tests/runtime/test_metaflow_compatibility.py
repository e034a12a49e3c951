"""A flow written for Metaflow runs unchanged apart from its import lines."""

from __future__ import annotations

from pathlib import Path

from batchwright import Flow

from ._support import TEST_FLOWS, FlowRun, RunFlow

METAFLOW_IMPORT = "from metaflow import "

# Metaflow's tutorial 03 (playlist-redux), cut to its client calls: a step reads the
# latest successful MovieStatsFlow run, after printing the metadata provider.
PLAYLIST_FLOW = """
from metaflow import FlowSpec, step


class PlayListFlow(FlowSpec):
    @step
    def start(self):
        from metaflow import Flow, get_metadata

        print("Using metadata provider: %s" % get_metadata())
        run = Flow("MovieStatsFlow").latest_successful_run
        print("Using analysis from '%s'" % str(run))
        self.best = run.data.best
        self.next(self.end)

    @step
    def end(self):
        print("best", self.best)


if __name__ == "__main__":
    PlayListFlow()
"""


def run_movie_stats(run_flow: RunFlow, tmp_path: Path) -> FlowRun:
    """Run the Metaflow-style MovieStatsFlow with only its import line changed."""
    original = (TEST_FLOWS / "metaflow_style_flow.py").read_text()
    flow_file = tmp_path / "movie_stats.py"
    flow_file.write_text(original.replace(METAFLOW_IMPORT, "from batchwright import "))
    (tmp_path / "movies.csv").write_text("title,genre\nAlien,scifi\nHeat,crime\nDune,scifi\n")
    return run_flow(flow_file, "run")


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
    assert run is not None and run.successful and run.data is not None
    assert run.data.best == [("scifi", 4.5), ("animation", 1.5)]
    assert run.data.title_count == 5
    assert run.data.longest == "Arrival"
    assert len(run["score"].tasks()) == 4  # three genres in the file plus the extra one
    assert "MovieStatsFlow parsed 5 rows" in run["start"].task.stdout


def test_tutorial_03_reads_another_flow_and_prints_get_metadata(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    upstream = run_movie_stats(run_flow, tmp_path)
    assert upstream.returncode == 0, upstream.output
    assert PLAYLIST_FLOW.count(METAFLOW_IMPORT) == 2
    flow_file = tmp_path / "playlist.py"
    flow_file.write_text(PLAYLIST_FLOW.replace(METAFLOW_IMPORT, "from batchwright import "))

    result = run_flow(flow_file, "run")
    assert result.returncode == 0, result.output
    assert f"Using metadata provider: local@{datastore}" in result.output
    assert f"Using analysis from 'Run('MovieStatsFlow/{upstream.run_id}')'" in result.output
    run = Flow("PlayListFlow", str(datastore)).latest_run
    assert run is not None and run.data is not None
    assert run.data.best == [("scifi", 3.0), ("crime", 1.5)]
