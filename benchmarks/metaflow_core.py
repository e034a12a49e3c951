"""Metaflow's own core test suite, run against batchwright.

    python benchmarks/metaflow_core.py PATH [--tests a,b] [--graphs x,y] [--jobs N]
                                            [--keep DIR] [--json FILE] [--list]

PATH is a Metaflow source checkout (a work tree holding ``test/core``) or a bare git
repository of one (e.g. what the tool library's ``fetch github:Netflix/metaflow`` brings;
its ``test/core`` is read with ``git archive``). Nothing of Metaflow's is copied into this
repository: the script reads Metaflow's files where they lie, at run time.

What it does, case by case, as Metaflow's ``test/core/run_tests.py`` does in its
``python3-all-local`` context with the ``cli`` executor:

1. Every (graph, test) pair is generated with Metaflow's own ``FlowFormatter``; pairs the
   formatter calls invalid are not cases (Metaflow skips them too).
2. The generated flow's import lines are switched from ``metaflow`` to ``batchwright``
   (module by module, through :data:`MODULES`: ``metaflow.exception`` is
   ``batchwright.exception``, Metaflow's timeout and catch plugins are
   ``batchwright.decorators.builtin``). The same switch applies to dotted names in string
   literals, since the tests compare exception type names such as
   ``"metaflow.exception.ExternalCommandFailed"``. Nothing else in the flow changes. The
   names a line imports that batchwright lacks are dropped from it, so the case still
   runs. If the flow then uses such a name, it fails with a NameError, unless the name
   belongs to a feature outside batchwright's scope.
3. A case is skipped, with its reason, only when it needs a feature outside this
   project's scope (:data:`OUT_OF_SCOPE`) or is disabled in Metaflow's own context.
4. The flow runs with Metaflow's command line::

       python test_flow.py --metadata=local ... run --run-id-file run-id --max-workers=50 ...

   If it fails and the test asks for a resume, ``resume [STEP]`` runs next. Then both of
   Metaflow's checkers (``CliCheck`` through the ``dump`` and ``logs`` commands,
   ``MetadataCheck`` through the client API) run the test's ``check_results``.
5. Metaflow's checker package ``metaflow_test`` is copied into each case's temporary
   directory with the same import switch. Its card helpers import Metaflow's card
   modules; they point to a small module written by this script that refuses every card
   call (cards are out of scope, and no case that reaches them runs).

The summary counts pass, fail and skip, lists every skip reason, and groups the failures
by their first error line. ``--keep DIR`` keeps each case's directory and logs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Names (used beyond the import line) and the out-of-scope feature each belongs to.
#: These are what the issue that asked for this script lists as outside batchwright.
OUT_OF_SCOPE: dict[str, str] = {
    "card": "cards",
    "get_cards": "cards",
    "TestStringComponent": "cards",
    "assert_card": "cards",
    "list_cards": "cards",
    "get_card_data": "cards",
    "try_to_get_card": "cards",
    "secrets": "secrets (@secrets)",
    "project": "@project",
    "project_name": "@project",
    "branch_name": "@project",
    "is_production": "@project",
    "FlowMutator": "flow and step mutators (Metaflow's extension API)",
    "StepMutator": "flow and step mutators (Metaflow's extension API)",
    "UserStepDecorator": "flow and step mutators (Metaflow's extension API)",
    "user_step_decorator": "flow and step mutators (Metaflow's extension API)",
    "test_step_decorator": "extension plugins (metaflow_extensions)",
    "test_flow_decorator": "extension plugins (metaflow_extensions)",
    "tl_value": "extension plugins (metaflow_extensions)",
    "metaflow_config": "extension plugins (metaflow_extensions)",
    "unbounded_test_foreach_internal": "unbounded foreach (Metaflow's internal test plugin)",
    "add_tag": "tag mutation",
    "add_tags": "tag mutation",
    "remove_tag": "tag mutation",
    "remove_tags": "tag mutation",
    "replace_tag": "tag mutation",
    "replace_tags": "tag mutation",
    "S3": "S3 datatools (metaflow.S3)",
}

#: Metaflow's python3-all-local context, as its contexts.json gives it.
CONTEXT = "python3-all-local"

#: The module standing in for Metaflow's card modules inside the checker package.
CARDS_SHIM = '''"""Cards are outside batchwright's scope: every call refuses.

Written by batchwright's benchmarks/metaflow_core.py.
"""


class CardNotPresentException(Exception):
    headline = "Card not found"


def get_cards(*args, **kwargs):
    raise CardNotPresentException("cards are outside batchwright's scope")
'''

_ANY_IMPORT = re.compile(r"^\s*(from|import) ")
_IMPORT = re.compile(r"^(?P<indent>\s*)from metaflow(?P<module>(?:\.\w+)*) import (?P<names>.+)$")


@dataclass
class Case:
    test: str
    graph: str
    flow_code: str
    check_code: str
    copy_files: list[str]
    should_resume: bool
    resume_step: str | None
    should_fail: bool
    skip: str | None = None

    @property
    def name(self) -> str:
        return f"{self.test}[{self.graph}]"


@dataclass
class Outcome:
    case: Case
    status: str  # pass | fail | skip
    reason: str = ""
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


# -- reading Metaflow's test/core ---------------------------------------------------------


def core_dir(source: Path, scratch: Path) -> Path:
    """``test/core`` of a work tree, or extracted from a bare repository with git archive."""
    if (source / "test" / "core" / "run_tests.py").is_file():
        return source / "test" / "core"
    if (source / "HEAD").is_file() and (source / "objects").is_dir():
        archive = subprocess.run(
            ["git", "--git-dir", str(source), "archive", "HEAD", "test/core"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
        return scratch / "test" / "core"
    raise SystemExit(f"{source}: neither a Metaflow checkout (no test/core) nor a git repository")


#: The module written into each case's directory in place of Metaflow's card modules.
CARDS_MODULE = "_mfcore_cards"

#: Where Metaflow's modules are in batchwright, longest prefix first: the import switch
#: applies it to ``from metaflow... import`` lines and to dotted names in string literals
#: (the tests compare exception types such as "metaflow.exception.ExternalCommandFailed").
MODULES: dict[str, str] = {
    "metaflow.plugins.cards": CARDS_MODULE,
    "metaflow.cards": CARDS_MODULE,
    "metaflow.plugins.timeout_decorator": "batchwright.decorators.builtin",
    "metaflow.plugins.catch_decorator": "batchwright.decorators.builtin",
    "metaflow": "batchwright",
}

_DOTTED_STRING = re.compile(r"""(?P<quote>["'])metaflow\.(?P<rest>[\w.]*)""")


def switch_module(path: str) -> str:
    """A Metaflow module path (or a dotted name under one) in batchwright."""
    for metaflow, batchwright in MODULES.items():
        if path == metaflow or path.startswith(metaflow + "."):
            if batchwright == CARDS_MODULE:  # one module stands in for all of them
                return CARDS_MODULE
            return batchwright + path[len(metaflow) :]
    return path


def switch_imports(source: str, available: set[str]) -> str:
    """``from metaflow... import`` lines made ``from batchwright... import`` (through
    :data:`MODULES`); names that ``batchwright`` lacks are dropped from a top-level import
    line. Dotted names in string literals that start with ``metaflow.`` switch too."""
    lines = []
    for line in source.splitlines():
        match = _IMPORT.match(line)
        if match is None:
            lines.append(
                _DOTTED_STRING.sub(
                    lambda m: m["quote"] + switch_module("metaflow." + m["rest"]), line
                )
            )
            continue
        indent, module, names = match["indent"], match["module"], match["names"]
        if module == "":
            kept = [n.strip() for n in names.split(",") if n.strip() in available]
            if not kept:
                lines.append(f"{indent}pass")
                continue
            names = ", ".join(kept)
        lines.append(f"{indent}from {switch_module('metaflow' + module)} import {names}")
    return "\n".join(lines) + "\n"


def out_of_scope(code: str) -> str | None:
    """The out-of-scope feature the code uses beyond its import lines, if any."""
    body = "\n".join(line for line in code.splitlines() if not _ANY_IMPORT.match(line))
    for name, feature in OUT_OF_SCOPE.items():
        if re.search(rf"(?<![\w.'\"]){re.escape(name)}\b|\.{re.escape(name)}\b", body):
            return feature
    return None


def checker_package(core: Path, dest: Path, available: set[str]) -> None:
    """Metaflow's ``metaflow_test`` package with its imports switched, plus the card shim."""
    package = dest / "metaflow_test"
    package.mkdir(parents=True)
    for path in (core / "metaflow_test").glob("*.py"):
        (package / path.name).write_text(switch_imports(path.read_text(), available))
    (dest / f"{CARDS_MODULE}.py").write_text(CARDS_SHIM)


def load_cases(core: Path, work: Path, available: set[str], tests: set[str], graphs: set[str]):
    """Every valid (graph, test) pair from Metaflow's formatter, with its skip reason."""
    checker_package(core, work, available)
    sys.path[:0] = [str(work), str(core / "tests")]
    # The formatter only asks whether a step is a StepMutator; batchwright has none.
    # Test modules that import from metaflow at their top get batchwright's names.
    import batchwright

    stand_in = types.ModuleType("metaflow")
    stand_in.StepMutator = type("StepMutator", (), {})  # type: ignore[attr-defined]
    stand_in.__getattr__ = lambda name: getattr(batchwright, name)  # type: ignore[attr-defined]
    sys.modules.setdefault("metaflow", stand_in)
    spec = importlib.util.spec_from_file_location(
        "mf_formatter", core / "metaflow_test" / "formatter.py"
    )
    assert spec is not None and spec.loader is not None
    formatter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(formatter)
    from metaflow_test import MetaflowTest  # the switched copy

    context = next(
        c
        for c in json.loads((core / "contexts.json").read_text())["contexts"]
        if c["name"] == CONTEXT
    )
    disabled = set(context.get("disabled_tests", []))
    graph_specs = sorted(
        (json.loads(p.read_text()) for p in (core / "graphs").glob("*.json")),
        key=lambda g: g["name"],
    )
    cases: list[Case] = []
    broken: list[tuple[str, str]] = []
    for path in sorted((core / "tests").glob("*.py")):
        try:
            module = importlib.import_module(path.stem)
        except Exception as error:  # a test module batchwright cannot even import
            broken.append((path.stem, f"{type(error).__name__}: {error}"))
            continue
        for attr in dir(module):
            cls = getattr(module, attr)
            if not (
                isinstance(cls, type) and issubclass(cls, MetaflowTest) and cls is not MetaflowTest
            ):
                continue
            if tests and cls.__name__.lower() not in tests:
                continue
            for graph in graph_specs:
                if graphs and graph["name"].lower() not in graphs:
                    continue
                fmt = formatter.FlowFormatter(graph, cls())
                if not fmt.valid:
                    continue
                case = Case(
                    test=cls.__name__,
                    graph=graph["name"],
                    flow_code=fmt.flow_code,
                    check_code=fmt.check_code,
                    copy_files=list(fmt.copy_files),
                    should_resume=fmt.should_resume,
                    resume_step=fmt.resume_step,
                    should_fail=fmt.should_fail,
                )
                if cls.__name__ in disabled:
                    case.skip = f"disabled in Metaflow's own {CONTEXT} context"
                else:
                    case.skip = out_of_scope(fmt.flow_code + "\n" + fmt.check_code)
                cases.append(case)
    return cases, broken, context


# -- running one case ---------------------------------------------------------------------


def run_case(
    case: Case,
    core: Path,
    context: dict[str, Any],
    available: set[str],
    keep: Path | None,
    timeout: float,
) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(case, "fail")
    directory = Path(tempfile.mkdtemp(prefix="mfcore_"))
    try:
        (directory / "test_flow.py").write_text(switch_imports(case.flow_code, available))
        (directory / "check_flow.py").write_text(switch_imports(case.check_code, available))
        checker_package(core, directory, available)
        for name in case.copy_files:
            shutil.copy2(core / "tests" / name, directory / name)
        env = {
            "USER": os.environ.get("USER", "tester"),
            "HOME": os.environ.get("HOME", str(directory)),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PATH": os.environ.get("PATH", ""),
            "PYTHONIOENCODING": "utf_8",
            "PYTHONPATH": str(directory),
            "BATCHWRIGHT_DATASTORE_ROOT": str(directory / ".batchwright"),
        }
        env.update(context["env"])
        python = sys.executable

        def call(args: list[str]) -> subprocess.CompletedProcess[str]:
            try:
                done = subprocess.run(
                    [python, "-B", *args],
                    cwd=directory,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as expired:
                output = expired.stdout or b""
                text = output.decode(errors="replace") if isinstance(output, bytes) else output
                done = subprocess.CompletedProcess(
                    args, 124, text, f"timed out after {timeout:.0f} s"
                )
            outcome.log.append(
                f"$ {' '.join(args)}  -> exit {done.returncode}\n{done.stdout}{done.stderr}"
            )
            return done

        def flow_command(mode: str, extra: list[str]) -> list[str]:
            return [
                "test_flow.py",
                *context["top_options"],
                mode,
                *extra,
                "--run-id-file",
                "run-id",
                *context["run_options"],
            ]

        done = call(flow_command("run", []))
        if done.returncode:
            if case.should_fail:
                pass
            elif case.should_resume:
                done = call(flow_command("resume", [case.resume_step] if case.resume_step else []))
                if done.returncode:
                    outcome.reason = "resume failed: " + first_error(done)
                    return outcome
            else:
                outcome.reason = "run failed: " + first_error(done)
                return outcome
        elif case.should_fail:
            outcome.reason = "the flow should have failed but did not"
            return outcome
        run_id = (directory / "run-id").read_text() if (directory / "run-id").exists() else ""
        if not run_id:
            outcome.reason = "no run id written to --run-id-file"
            return outcome
        for checker in ("CliCheck", "MetadataCheck"):
            checked = call(["check_flow.py", checker, run_id, *context["top_options"]])
            if checked.returncode:
                outcome.reason = f"{checker}: " + first_error(checked)
                return outcome
        outcome.status = "pass"
        return outcome
    finally:
        outcome.seconds = time.monotonic() - started
        if keep is not None:
            target = keep / case.name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(directory, target, ignore=shutil.ignore_patterns(".batchwright"))
            (target / "commands.log").write_text("\n".join(outcome.log))
        shutil.rmtree(directory, ignore_errors=True)


def first_error(done: subprocess.CompletedProcess[str]) -> str:
    """The most telling line of a failed command's output: the last exception line, else
    the last non-empty line."""
    lines = [
        line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()
    ]
    for line in reversed(lines):
        if re.match(
            r"^[\w.]*(Error|Exception|Failed|Mismatch|Exceeded)\b.*:", line
        ) or line.startswith("Expected"):
            return line[:300]
    return (lines[-1] if lines else f"exit {done.returncode}")[:300]


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="Metaflow source checkout or bare git repository")
    parser.add_argument(
        "--tests", default="", help="comma-separated test class names (default: all)"
    )
    parser.add_argument("--graphs", default="", help="comma-separated graph names (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per command (default 1800)"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep each case's directory and commands.log here"
    )
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    parser.add_argument(
        "--list", action="store_true", help="list the cases and their skips, run nothing"
    )
    args = parser.parse_args(argv)
    import batchwright

    available = {name for name in dir(batchwright) if not name.startswith("_")} | set(
        batchwright.__all__
    )
    scratch = Path(tempfile.mkdtemp(prefix="mfcore_src_"))
    try:
        core = core_dir(args.source.resolve(), scratch)
        parse = lambda text: {t.strip().lower() for t in text.split(",") if t.strip()}  # noqa: E731
        cases, broken, context = load_cases(
            core, scratch / "work", available, parse(args.tests), parse(args.graphs)
        )
        runnable = [c for c in cases if c.skip is None]
        print(
            f"{len(cases)} cases from {core}; {len(runnable)} in scope, "
            f"{len(cases) - len(runnable)} skipped"
        )
        for name, error in broken:
            print(f"  test module {name} could not be imported: {error}")
        if args.list:
            for case in cases:
                print(f"  {case.name}: {'run' if case.skip is None else 'skip: ' + case.skip}")
            return 0
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        outcomes = [Outcome(c, "skip", c.skip or "") for c in cases if c.skip is not None]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [
                pool.submit(run_case, c, core, context, available, args.keep, args.timeout)
                for c in runnable
            ]
            for number, future in enumerate(futures, 1):
                outcome = future.result()
                outcomes.append(outcome)
                detail = f" ({outcome.reason})" if outcome.reason else ""
                print(
                    f"[{number}/{len(runnable)}] {outcome.status.upper()} {outcome.case.name} "
                    f"{outcome.seconds:.1f} s{detail}",
                    flush=True,
                )
        report(outcomes, time.monotonic() - started)
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {
                            "test": o.case.test,
                            "graph": o.case.graph,
                            "status": o.status,
                            "reason": o.reason,
                            "seconds": round(o.seconds, 2),
                        }
                        for o in outcomes
                    ],
                    indent=2,
                )
            )
        return 0 if all(o.status != "fail" for o in outcomes) else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(outcomes: list[Outcome], seconds: float) -> None:
    counts = Counter(o.status for o in outcomes)
    applicable = counts["pass"] + counts["fail"]
    share = f"{100 * counts['pass'] / applicable:.0f}%" if applicable else "n/a"
    print(
        f"\npass {counts['pass']}, fail {counts['fail']}, skip {counts['skip']}: "
        f"{counts['pass']}/{applicable} applicable cases pass ({share}) in {seconds:.0f} s"
    )
    skips = Counter(o.reason for o in outcomes if o.status == "skip")
    if skips:
        print("skipped, by reason:")
        for reason, number in skips.most_common():
            tests = sorted(
                {o.case.test for o in outcomes if o.status == "skip" and o.reason == reason}
            )
            print(f"  {number:4d}  {reason}: {', '.join(tests)}")
    failures = Counter(re.sub(r"\d+", "N", o.reason)[:160] for o in outcomes if o.status == "fail")
    if failures:
        print("failed, by first error:")
        for reason, number in failures.most_common():
            print(f"  {number:4d}  {reason}")


if __name__ == "__main__":
    sys.exit(main())
