"""``current``: what the running task knows about itself.

Inside a task, ``current.flow_name``, ``current.run_id``, ``current.step_name``,
``current.task_id``, ``current.retry_count``, ``current.origin_run_id``,
``current.pathspec``, ``current.tempdir`` and ``current.parameter_names`` describe the
task (and in a parallel step ``current.parallel`` and ``current.is_parallel`` the node);
outside one, ``current.is_running_flow`` is False and those read as None.

Other parts of batchwright attach namespaces with :meth:`Current.extend` (e.g. the
``@batch`` work attaches ``current.batch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Current:
    """The task's identity; one module-level instance, :data:`current`."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._extensions: dict[str, Any] = {}

    # The runtime calls this once per task, before the step's code runs.
    def _set_task(
        self,
        *,
        flow_name: str,
        run_id: str,
        step_name: str,
        task_id: str,
        retry_count: int,
        origin_run_id: str | None,
        tempdir: str | None,
        parallel: Any = None,
        parameter_names: Sequence[str] = (),
    ) -> None:
        self._values = {
            "parallel": parallel,
            "parameter_names": tuple(parameter_names),
            "flow_name": flow_name,
            "run_id": run_id,
            "step_name": step_name,
            "task_id": task_id,
            "retry_count": retry_count,
            "origin_run_id": origin_run_id,
            "tempdir": tempdir,
        }

    # A decorator that moves the task's temporary files (``@batch`` with a tmpfs) calls
    # this from ``task_pre_step``, before the step's code reads ``current.tempdir``.
    def _set_tempdir(self, tempdir: str) -> None:
        if not self._values:
            raise RuntimeError("current.tempdir can only be moved inside a running task")
        self._values["tempdir"] = tempdir

    def extend(self, name: str, value: Any) -> None:
        """Attach ``value`` as ``current.<name>`` for the rest of the task."""
        if name in _FIELDS or name.startswith("_"):
            raise ValueError(f"current.{name} is reserved")
        self._extensions[name] = value

    @property
    def is_running_flow(self) -> bool:
        """True inside a running task."""
        return bool(self._values)

    @property
    def flow_name(self) -> str | None:
        """Name of the flow class."""
        return self._values.get("flow_name")

    @property
    def run_id(self) -> str | None:
        """Id of the run."""
        return self._values.get("run_id")

    @property
    def step_name(self) -> str | None:
        """Name of the running step."""
        return self._values.get("step_name")

    @property
    def task_id(self) -> str | None:
        """Id of the task within the run."""
        return self._values.get("task_id")

    @property
    def retry_count(self) -> int:
        """0 for the first attempt, 1 for the first retry, and so on."""
        return int(self._values.get("retry_count", 0))

    @property
    def origin_run_id(self) -> str | None:
        """For a resumed run, the run it resumes; otherwise None."""
        return self._values.get("origin_run_id")

    @property
    def tempdir(self) -> str | None:
        """A private temporary directory, removed when the task ends; inside the tmpfs
        for a ``@batch(use_tmpfs=True)`` step running on AWS Batch (``tmpfs_tempdir``)."""
        return self._values.get("tempdir")

    @property
    def parameter_names(self) -> list[str] | None:
        """The names of the flow's parameters (their attribute names, in Metaflow's order:
        sorted); None outside a task."""
        if not self._values:
            return None
        return list(self._values["parameter_names"])

    @property
    def is_parallel(self) -> bool:
        """True inside a parallel step (one of its nodes)."""
        return self._values.get("parallel") is not None

    @property
    def parallel(self) -> Any:
        """In a parallel step, this node's place: ``main_ip`` (where the nodes meet),
        ``num_nodes``, ``node_index`` and ``control_task_id``
        (:class:`batchwright.multinode.Parallel`); outside one, None."""
        return self._values.get("parallel")

    @property
    def pathspec(self) -> str | None:
        """``Flow/run_id/step/task_id``."""
        if not self._values:
            return None
        v = self._values
        return f"{v['flow_name']}/{v['run_id']}/{v['step_name']}/{v['task_id']}"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not properties: the extensions.
        extensions = self.__dict__.get("_extensions", {})
        if name in extensions:
            return extensions[name]
        raise AttributeError(f"current has no attribute '{name}'")

    def __repr__(self) -> str:
        return f"current({self.pathspec or 'not running a flow'})"


_FIELDS = frozenset(
    {
        "flow_name",
        "run_id",
        "step_name",
        "task_id",
        "retry_count",
        "origin_run_id",
        "tempdir",
        "pathspec",
        "is_running_flow",
        "is_parallel",
        "parallel",
        "parameter_names",
        "extend",
    }
)

#: The running task's identity.
current = Current()
