"""The client's tags, namespaces and datastore choice (Metaflow's ``metadata``), read from
run records written straight into a temporary datastore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwright import client
from batchwright.client import (
    ClientError,
    DataArtifact,
    Flow,
    FlowNotFound,
    MetadataError,
    Metaflow,
    MetaflowNamespaceMismatch,
    Run,
    Step,
    Task,
    default_metadata,
    default_namespace,
    get_metadata,
    get_namespace,
    metadata,
    namespace,
)
from batchwright.datastore import ROOT_VARIABLE, open_datastore

FLOW = "TaggedFlow"


@pytest.fixture(autouse=True)
def fresh_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no metadata() or namespace() choice, as a new process does."""
    monkeypatch.setattr(client, "_settings", client._ClientSettings())
    monkeypatch.setenv("LOGNAME", "alice")  # getpass.getuser() reads LOGNAME first
    monkeypatch.delenv("BATCHWRIGHT_USER", raising=False)
    yield


def write_run(root: Path, run_id: str, flow: str = FLOW, **record: Any) -> None:
    """A finished run record as the scheduler writes it, plus ``record``."""
    body = {"status": "succeeded", "started_at": 1_700_000_000 + int(run_id), **record}
    open_datastore(flow, str(root)).write_run(run_id, {"finished_at": 1, **body})


def write_task(root: Path, run_id: str, step: str = "start", flow: str = FLOW) -> None:
    """A finished task with one artifact, ``x``."""
    store = open_datastore(flow, str(root))
    key = store.save(int(run_id))
    store.write_metadata(run_id, step, "1", 0, {"attempt": 0, "artifacts": {"x": key}})
    store.mark_done(run_id, step, "1", 0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Runs 1 (alice), 2 (bob), 3 (alice, tagged) and 4 (recorded before users were kept)."""
    store = tmp_path / "store"
    write_run(store, "1", user="alice", tags=[])
    write_run(store, "2", user="bob", tags=["nightly"])
    write_run(store, "3", user="alice", tags=["experiment", "nightly"], status="failed")
    write_run(store, "4")
    return store


def ids(runs: Any) -> list[str]:
    return [run.id for run in runs]


# -- tags -----------------------------------------------------------------------------------


def test_tags_are_the_user_tags_and_the_system_tags(root: Path) -> None:
    run = Flow(FLOW, str(root))["3"]
    assert run.user_tags == frozenset({"experiment", "nightly"})
    assert run.system_tags == frozenset({"user:alice", "runtime:batchwright"})
    assert run.tags == frozenset({"experiment", "nightly", "user:alice", "runtime:batchwright"})
    assert isinstance(run.tags, frozenset)


def test_a_record_without_tags_or_user_has_only_the_runtime_tag(root: Path) -> None:
    run = Flow(FLOW, str(root), _namespace_check=False)["4"]
    assert run.user_tags == frozenset()
    assert run.system_tags == frozenset({"runtime:batchwright"})
    assert run.tags == frozenset({"runtime:batchwright"})


# -- namespaces -----------------------------------------------------------------------------


def test_the_default_namespace_is_the_user_running_the_client() -> None:
    assert get_namespace() == "user:alice"
    assert namespace("user:bob") == "user:bob"
    assert get_namespace() == "user:bob"
    assert default_namespace() == "user:alice"
    assert get_namespace() == "user:alice"


def test_a_job_reads_the_namespace_of_who_started_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A container's login name says nothing (root); the job is told who started the run.
    monkeypatch.setenv("BATCHWRIGHT_USER", "bob")
    assert get_namespace() == "user:bob"
    assert default_namespace() == "user:bob"


def test_runs_iteration_and_latest_run_show_only_the_current_namespace(root: Path) -> None:
    flow = Flow(FLOW, str(root))
    assert ids(flow.runs()) == ["3", "1"]
    assert ids(flow) == ["3", "1"]
    assert flow.latest_run is not None and flow.latest_run.id == "3"
    assert flow.latest_successful_run is not None and flow.latest_successful_run.id == "1"
    assert flow.latest_run.is_in_namespace()


def test_namespace_switches_to_another_user_or_a_tag(root: Path) -> None:
    namespace("user:bob")
    bob = Flow(FLOW, str(root))
    assert ids(bob.runs()) == ["2"]
    namespace("nightly")
    assert ids(Flow(FLOW, str(root)).runs()) == ["3", "2"]
    namespace("user:carol")
    carol = Flow(FLOW, str(root))
    assert carol.runs() == []
    assert carol.latest_run is None
    assert carol.latest_successful_run is None


def test_the_global_namespace_shows_every_run_older_records_included(root: Path) -> None:
    assert namespace(None) is None
    assert get_namespace() is None
    flow = Flow(FLOW, str(root))
    assert ids(flow.runs()) == ["4", "3", "2", "1"]
    assert flow.latest_run is not None and flow.latest_run.id == "4"
    assert flow["4"].is_in_namespace()


def test_runs_filters_by_tags_within_the_namespace(root: Path) -> None:
    flow = Flow(FLOW, str(root))
    assert ids(flow.runs("nightly")) == ["3"]  # run 2 is nightly but bob's
    assert ids(flow.runs("nightly", "experiment")) == ["3"]
    assert flow.runs("no-such-tag") == []
    namespace(None)
    assert ids(Flow(FLOW, str(root)).runs("nightly")) == ["3", "2"]


def test_a_run_asked_for_by_id_outside_the_namespace_is_refused(root: Path) -> None:
    namespace("user:bob")
    flow = Flow(FLOW, str(root))
    with pytest.raises(MetaflowNamespaceMismatch) as raised:
        flow["1"]
    assert str(raised.value) == (
        f"Run('{FLOW}/1') is not in the namespace 'user:bob': the run's tags are "
        "'runtime:batchwright', 'user:alice'. Call namespace(None) to read runs of every "
        "namespace or namespace('user:alice') for its user's runs, then ask again; or pass "
        "_namespace_check=False for this one object."
    )
    assert (raised.value.run, raised.value.namespace) == (f"{FLOW}/1", "user:bob")
    assert raised.value.tags == frozenset({"runtime:batchwright", "user:alice"})
    assert isinstance(raised.value, ClientError) and raised.value.exit_code == 1
    assert "1" in flow  # it exists, whatever the namespace
    assert flow["2"].id == "2"  # bob's own run


@pytest.mark.parametrize("current", ["user:alice", "user:bob", "nightly"])
def test_a_run_recorded_before_users_were_kept_is_reached_by_id_in_any_namespace(
    root: Path, current: str
) -> None:
    # Run 4's record has no "user" field (and so no user: tag): as before batchwright kept
    # tags, asking for it directly works in the default namespace and any other.
    write_task(root, "4")
    where = str(root)
    namespace(current)
    assert Run(f"{FLOW}/4", datastore_root=where).id == "4"
    assert Flow(FLOW, where)["4"].id == "4"
    assert Step(f"{FLOW}/4/start", datastore_root=where).task.data.x == 4
    assert Task(f"{FLOW}/4/start/1", datastore_root=where).data.x == 4
    assert DataArtifact(f"{FLOW}/4/start/1/x", datastore_root=where).data == 4
    # Listing still shows only the runs tagged with the namespace.
    assert "4" not in ids(Flow(FLOW, where))


def test_a_step_task_or_artifact_of_a_run_outside_the_namespace_is_refused(root: Path) -> None:
    write_task(root, "2")  # bob's run
    where = str(root)
    makers: list[tuple[type[Step | Task | DataArtifact], str]] = [
        (Step, f"{FLOW}/2/start"),
        (Task, f"{FLOW}/2/start/1"),
        (DataArtifact, f"{FLOW}/2/start/1/x"),
    ]
    for make, pathspec in makers:
        with pytest.raises(MetaflowNamespaceMismatch) as raised:
            make(pathspec, datastore_root=where)
        assert str(raised.value).startswith(
            f"{make.__name__}('{pathspec}') belongs to run {FLOW}/2, which is not in the "
            "namespace 'user:alice': the run's tags are 'nightly', 'runtime:batchwright', "
            "'user:bob'. Call namespace(None) to read runs of every namespace or "
            "namespace('user:bob') for its user's runs, then ask again;"
        )
    # A missing object is reported as missing, whatever the namespace.
    with pytest.raises(ClientError, match=r"has no step 'nowhere'$") as missing:
        Step(f"{FLOW}/2/nowhere", datastore_root=where)
    assert not isinstance(missing.value, MetaflowNamespaceMismatch)


def test_namespace_check_false_or_the_global_namespace_reach_every_run(root: Path) -> None:
    write_task(root, "2")  # bob's run
    where = str(root)
    assert Run(f"{FLOW}/2", datastore_root=where, _namespace_check=False).user_tags == {"nightly"}
    assert Step(f"{FLOW}/2/start", datastore_root=where, _namespace_check=False).task.data.x == 2
    assert Task(f"{FLOW}/2/start/1", datastore_root=where, _namespace_check=False).data.x == 2
    assert (
        DataArtifact(f"{FLOW}/2/start/1/x", datastore_root=where, _namespace_check=False).data == 2
    )
    unchecked = Flow(FLOW, str(root), _namespace_check=False)
    assert unchecked["2"].id == "2"
    assert ids(unchecked) == ["4", "3", "2", "1"]  # and it lists every run
    namespace(None)
    assert Flow(FLOW, str(root))["4"].is_in_namespace()
    assert Task(f"{FLOW}/2/start/1", datastore_root=where).data.x == 2


def test_an_object_keeps_the_namespace_it_was_made_in(root: Path) -> None:
    flow = Flow(FLOW, str(root))
    namespace(None)
    assert ids(flow.runs()) == ["3", "1"]
    with pytest.raises(MetaflowNamespaceMismatch):
        flow["2"]
    assert ids(Flow(FLOW, str(root)).runs()) == ["4", "3", "2", "1"]


def test_namespace_refuses_an_empty_or_non_string_value() -> None:
    message = (
        "namespace(''): a namespace is a tag, such as 'user:alice' or a tag given with "
        "run --tag; pass None for the global namespace (every run)."
    )
    with pytest.raises(MetadataError) as raised:
        namespace("")
    assert str(raised.value) == message
    assert raised.value.exit_code == 2
    with pytest.raises(MetadataError, match=r"^namespace\(3\): a namespace is a tag"):
        namespace(3)  # type: ignore[arg-type]
    assert get_namespace() == "user:alice"  # a refused value changes nothing


def test_metaflow_lists_the_flows_with_runs_in_the_namespace(root: Path) -> None:
    write_run(root, "7", flow="OtherFlow", user="bob")
    assert [flow.name for flow in Metaflow(str(root)).flows] == [FLOW]
    namespace(None)
    assert [flow.name for flow in Metaflow(str(root))] == ["OtherFlow", FLOW]
    assert Metaflow(str(root))["OtherFlow"].latest_run is not None


# -- a flow that is not there ---------------------------------------------------------------


def test_a_flow_with_no_runs_is_not_found_naming_the_datastore(root: Path) -> None:
    with pytest.raises(FlowNotFound) as raised:
        Flow("NoSuchFlow", str(root))
    assert str(raised.value) == (
        f"Flow('NoSuchFlow') not found: there are no runs of 'NoSuchFlow' in {root}. "
        "Check the name (the flow's class name) and where its runs were written: pass "
        "Flow(name, datastore_root=...), call metadata('s3://BUCKET/PREFIX' or "
        "'local@PATH'), or set $BATCHWRIGHT_DATASTORE_ROOT to the datastore the runs used."
    )
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, ClientError)


# -- pathspecs ------------------------------------------------------------------------------


def test_run_step_and_task_open_from_a_pathspec(root: Path) -> None:
    write_task(root, "2")
    namespace("user:bob")
    assert Run(f"{FLOW}/2", datastore_root=str(root)).user_tags == frozenset({"nightly"})
    assert Step(f"{FLOW}/2/start", datastore_root=str(root)).task.data.x == 2
    assert Task(f"{FLOW}/2/start/1", datastore_root=str(root)).data.x == 2
    artifact = DataArtifact(f"{FLOW}/2/start/1/x", datastore_root=str(root))
    assert (artifact.id, artifact.data) == ("x", 2)
    with pytest.raises(ClientError) as raised:
        DataArtifact(f"{FLOW}/2/start/1/y", datastore_root=str(root))
    assert str(raised.value) == f"task {FLOW}/2/start/1 has no artifact 'y'"


def test_a_pathspec_of_the_wrong_shape_or_a_missing_object_is_refused(root: Path) -> None:
    with pytest.raises(ClientError) as raised:
        Run(FLOW, datastore_root=str(root))
    assert str(raised.value) == f"Run('{FLOW}'): expected Run('FlowName/RunID')"
    with pytest.raises(ClientError) as raised:
        Run(f"{FLOW}/99", datastore_root=str(root))
    assert str(raised.value) == f"flow '{FLOW}' has no run '99' in {root}"
    with pytest.raises(ClientError) as raised:
        Step(f"{FLOW}/1/nowhere", datastore_root=str(root))
    assert str(raised.value) == f"run {FLOW}/1 has no step 'nowhere'"
    with pytest.raises(ClientError) as raised:
        Task(f"{FLOW}/1//1", datastore_root=str(root))
    assert str(raised.value) == (
        f"Task('{FLOW}/1//1'): expected Task('FlowName/RunID/StepName/TaskID')"
    )


# -- metadata: which datastore --------------------------------------------------------------


def test_metadata_picks_the_datastore_flows_are_read_from(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path / "elsewhere"))
    assert get_metadata() == f"local@{tmp_path / 'elsewhere'}"
    assert metadata(f"local@{root}") == f"local@{root}"
    assert get_metadata() == f"local@{root}"
    assert Flow(FLOW).latest_run is not None  # no datastore_root: metadata()'s is used
    assert default_metadata() == f"local@{tmp_path / 'elsewhere'}"
    with pytest.raises(FlowNotFound):
        Flow(FLOW)


def test_metadata_accepts_local_a_folder_s3_and_its_own_answer(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOT_VARIABLE, str(root))
    assert metadata("local") == f"local@{root}"
    monkeypatch.delenv(ROOT_VARIABLE)
    monkeypatch.chdir(tmp_path)
    assert metadata("local") == f"local@{tmp_path / '.batchwright'}"
    assert metadata(str(root)) == f"local@{root}"
    assert metadata("s3://bucket/runs/") == "s3@s3://bucket/runs"
    assert metadata("s3@s3://bucket/runs") == "s3@s3://bucket/runs"
    both = metadata(f"s3://bucket/runs, local@{root}")
    assert both == f"s3@s3://bucket/runs,local@{root}"
    assert metadata(both) == both


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "service@https://metadata.example.com",
            "metadata('service@https://metadata.example.com'): batchwright has no metadata "
            "service; a run's metadata is kept in its datastore, next to its artifacts. Pass "
            "the datastore instead: metadata('s3://BUCKET/PREFIX') for the S3 datastore of "
            "an environment, or metadata('local') for the folder that runs without @batch "
            "steps use.",
        ),
        (
            "https://metadata.example.com",
            "metadata('https://metadata.example.com'): batchwright has no metadata service;",
        ),
        (
            "s3@bucket/runs",
            "metadata('s3@bucket/runs'): 's3@bucket/runs' is not an S3 location; write "
            "metadata('s3://BUCKET/PREFIX').",
        ),
        (
            "mongo@db",
            "metadata('mongo@db'): 'mongo@db' names no datastore. Use 'local', "
            "'local@PATH', a folder, or 's3://BUCKET/PREFIX'.",
        ),
        (
            " ",
            "metadata(' '): expected a datastore, e.g. metadata('local'), "
            "metadata('local@/path/to/.batchwright') or metadata('s3://BUCKET/PREFIX').",
        ),
    ],
)
def test_metadata_refuses_a_service_or_an_unknown_value(value: str, message: str) -> None:
    with pytest.raises(MetadataError) as raised:
        metadata(value)
    assert str(raised.value).startswith(message)
    assert raised.value.exit_code == 2
    assert client._settings.roots is None  # a refused value changes nothing
