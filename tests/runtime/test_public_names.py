"""``from batchwright import environment`` is the ``@environment`` decorator, whatever was
imported before: the subpackage ``batchwright.environment`` shares the name, and Python
binds a subpackage on its parent when it is first imported (as the ``batchwright`` CLI
does before it loads a flow file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FLOW = """
from batchwright import FlowSpec, environment, step


class NamedFlow(FlowSpec):
    @environment(vars={"MODE": "fast"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NamedFlow()
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_decorator_keeps_its_name_after_the_subpackage_is_imported(tmp_path: Path) -> None:
    done = _python(
        "import batchwright.environment.descriptor, batchwright.environment.routing\n"
        "from batchwright import environment\n"
        "import batchwright\n"
        "print(environment.__module__, batchwright.environment is environment)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    module, same = done.stdout.split()
    assert module.startswith("batchwright.decorators") and same == "True"


def test_the_cli_plans_a_flow_that_imports_the_decorator(tmp_path: Path) -> None:
    # `batchwright plan FLOW.py` imports the environment subpackage before the flow file
    # (it failed with "TypeError: 'module' object is not callable").
    (tmp_path / "named_flow.py").write_text(FLOW)
    done = subprocess.run(
        [sys.executable, "-m", "batchwright", "plan", "named_flow.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step start: local" in done.stdout and "All steps can run." in done.stdout


def test_the_metaflow_module_paths_shadow_no_public_name(tmp_path: Path) -> None:
    # Importing a submodule binds its name on the package: none of the modules at Metaflow's
    # paths may take the name of something `from batchwright import ...` gives.
    done = _python(
        "import batchwright\n"
        "public = {n: getattr(batchwright, n) for n in batchwright.__all__ if n[0] != '_'}\n"
        "import batchwright.exception, batchwright.metaflow_current\n"
        "import batchwright.includefile, batchwright.util, batchwright.schedule\n"
        "changed = [n for n, v in public.items() if getattr(batchwright, n) is not v]\n"
        "print(changed, batchwright.metaflow_current.current is batchwright.current)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"]


def test_schedule_is_the_decorator_and_its_module_still_gives_its_names(tmp_path: Path) -> None:
    # The module batchwright.schedule shares its name with the decorator `schedule` it
    # defines; the package binds the decorator, and `from batchwright.schedule import ...`
    # still reaches the module through sys.modules. (`import batchwright.schedule as m`
    # would give the decorator: import the names from the module instead.)
    done = _python(
        "import batchwright.schedule\n"
        "from batchwright.schedule import Schedule, flow_schedule\n"
        "import batchwright\n"
        "from batchwright import FlowSpec, schedule\n"
        "@schedule(hourly=True)\n"
        "class Hourly(FlowSpec):\n"
        "    pass\n"
        "print(batchwright.schedule is schedule, 'schedule' in batchwright.__all__,\n"
        "      flow_schedule(Hourly) == Schedule('cron(0 * * * ? *)'))\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
