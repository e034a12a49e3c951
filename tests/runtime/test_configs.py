"""Flow configs: ``Config`` and ``config_expr``. Where a value comes from, how it is parsed,
that it is read-only, the errors (exit code 2, before anything runs), and real runs
reading configs in steps, parameter defaults, decorator arguments and a resume."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchwright import Config, Flow, FlowSpec, Parameter, config_expr, environment, step
from batchwright.cli.flow import main as flow_main
from batchwright.configs import (
    FILES_VARIABLE,
    VALUES_VARIABLE,
    ConfigChoice,
    ConfigError,
    ConfigExpression,
    ConfigValue,
    RunConfigs,
    resolve_configs,
)
from batchwright.console import Console
from batchwright.definition import load_definition
from batchwright.errors import UserInputError
from batchwright.parameters import resolve_parameters

from ._support import RunFlow, write_flow

# --- flows declared here, for the unit tests --------------------------------------------------


def _colon_parser(text: str) -> dict[str, str]:
    key, value = text.split(":")
    return {key.strip(): value.strip()}


class OrderFlow(FlowSpec):
    """One config with a default value, one read from a default file."""

    inline = Config("inline", default_value={"source": "default_value"})
    from_file = Config("from_file", default="from_file.json")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _value(choices: list[ConfigChoice] | None = None, **environ: str) -> RunConfigs:
    return resolve_configs(OrderFlow, choices or [], environ)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is tmp_path, holding the default file from_file.json."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "from_file.json").write_text('{"source": "default"}')
    return tmp_path


# --- where a value comes from --------------------------------------------------------------------


def test_the_declared_defaults_apply_when_nothing_is_given(in_tmp: Path) -> None:
    configs = _value()
    assert configs.values == {
        "inline": {"source": "default_value"},
        "from_file": {"source": "default"},
    }
    assert configs.sources == {"inline": "default_value", "from_file": "default"}
    assert configs.artifacts() == {
        "inline": configs.values["inline"],
        "from_file": {"source": "default"},
    }


def test_environment_variables_win_over_the_defaults(in_tmp: Path) -> None:
    (in_tmp / "env.json").write_text('{"source": "file variable"}')
    configs = _value(
        **{
            FILES_VARIABLE: json.dumps({"from_file": "env.json"}),
            VALUES_VARIABLE: json.dumps({"inline": {"source": "value variable"}}),
        }
    )
    assert configs.values["from_file"] == {"source": "file variable"}
    assert configs.values["inline"] == {"source": "value variable"}
    assert configs.sources == {"inline": VALUES_VARIABLE, "from_file": FILES_VARIABLE}


def test_the_command_line_wins_over_the_environment_variables(in_tmp: Path) -> None:
    (in_tmp / "cli.json").write_text('{"source": "--config"}')
    configs = _value(
        [
            ConfigChoice("from_file", "file", "cli.json", "--config"),
            ConfigChoice("inline", "value", '{"source": "--config-value"}', "--config-value"),
        ],
        **{
            FILES_VARIABLE: json.dumps({"from_file": "missing.json"}),
            VALUES_VARIABLE: json.dumps({"inline": {"source": "value variable"}}),
        },
    )
    assert configs.values == {
        "inline": {"source": "--config-value"},
        "from_file": {"source": "--config"},
    }


def test_a_file_may_be_given_for_a_config_declared_with_a_value_and_the_reverse(
    in_tmp: Path,
) -> None:
    (in_tmp / "other.json").write_text('{"source": "file"}')
    configs = _value(
        [
            ConfigChoice("inline", "file", "other.json", "--config"),
            ConfigChoice("from_file", "value", '{"source": "text"}', "--config-value"),
        ]
    )
    assert configs.values == {"inline": {"source": "file"}, "from_file": {"source": "text"}}


class CallableDefaults(FlowSpec):
    path = Config("path", default=lambda ctx: f"{ctx.parameter_name}.json")
    value = Config("value", default_value=lambda ctx: {"flow": ctx.flow_name})
    text = Config("text", default_value='{"from": "text"}')
    absent = Config("absent")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_callable_defaults_receive_the_context_and_an_absent_config_is_none(in_tmp: Path) -> None:
    (in_tmp / "path.json").write_text('{"from": "path.json"}')
    configs = resolve_configs(CallableDefaults, [], {})
    assert configs.values == {
        "path": {"from": "path.json"},
        "value": {"flow": "CallableDefaults"},
        "text": {"from": "text"},
        "absent": None,
    }


# --- parsers --------------------------------------------------------------------------------------


class ParserFlow(FlowSpec):
    by_function = Config("by_function", parser=_colon_parser, default_value="baz: amazing")
    by_name = Config("by_name", parser="urllib.parse.parse_qs", default_value="a=1&b=2")
    plain = Config("plain", parser=str.upper, plain=True, default_value="shout")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_a_parser_reads_the_text_by_function_or_by_dotted_name() -> None:
    configs = resolve_configs(ParserFlow, [], {})
    assert configs.values["by_function"] == {"baz": "amazing"}
    assert configs.values["by_function"].baz == "amazing"
    assert configs.values["by_name"] == {"a": ["1"], "b": ["2"]}
    # plain=True keeps what the parser returns, mapping or not.
    assert configs.values["plain"] == "SHOUT"


def test_a_parser_gets_the_given_text_too() -> None:
    choice = ConfigChoice("by_function", "value", "given: here", "--config-value")
    assert resolve_configs(ParserFlow, [choice], {}).values["by_function"] == {"given": "here"}


@pytest.mark.parametrize(
    ("parser", "text", "expected"),
    [
        (_colon_parser, "no colon here", "parser '_colon_parser' failed on the value from"),
        ("no_such_module_xyz.parse", "x", "module 'no_such_module_xyz' cannot be imported"),
        ("json.no_such_function", "x", "module 'json' has no function 'no_such_function'"),
        ("json.loads", "[1, 2]", "is a list ([1, 2]), not a mapping (as read by parser"),
        (None, "{not json", "is not valid JSON"),
    ],
)
def test_parser_problems_name_the_config_and_the_fix(parser: Any, text: str, expected: str) -> None:
    class Parsed(FlowSpec):
        conf = Config("conf", parser=parser, default_value=text)

    with pytest.raises(ConfigError) as error:
        resolve_configs(Parsed, [], {})
    assert "config 'conf'" in str(error.value) and expected in str(error.value)
    assert error.value.exit_code == 2


# --- the value is read-only ---------------------------------------------------------------------


def test_a_config_value_reads_by_key_and_attribute_and_refuses_every_change() -> None:
    value = ConfigValue({"value": 42, "nested": {"value": 43}, "items": [{"a": 1}]})
    assert value.value == value["value"] == 42
    assert value.nested.value == value["nested"]["value"] == value.nested["value"] == 43
    assert value["items"][0].a == 1
    changes: list[Callable[[], Any]] = [
        lambda: setattr(value, "value", 5),
        lambda: value.__setitem__("value", 5),
        lambda: setattr(value.nested, "value", 5),
        lambda: value["nested"].__setitem__("value", 5),
        lambda: value.update({"value": 5}),
        lambda: value.pop("value"),
        lambda: value.setdefault("other", 1),
        lambda: value.clear(),
        lambda: value.__delitem__("value"),
        lambda: delattr(value, "value"),
    ]
    for change in changes:
        with pytest.raises(TypeError):
            change()
    assert value.to_dict() == {"value": 42, "nested": {"value": 43}, "items": [{"a": 1}]}
    with pytest.raises(AttributeError, match=r"no key 'valeu'\. Did you mean 'value'"):
        _ = value.valeu


def test_a_config_value_pickles_and_dumps_as_json_and_copies_into_a_plain_dict() -> None:
    value = ConfigValue({"nested": {"value": 43}})
    again = pickle.loads(pickle.dumps(value))
    assert isinstance(again, ConfigValue) and again.nested.value == 43
    assert json.loads(json.dumps(value)) == {"nested": {"value": 43}}
    plain = value.to_dict()
    plain["nested"]["value"] = 1  # a copy: changeable, and the config is unchanged
    assert type(plain["nested"]) is dict and value.nested.value == 43


def test_references_on_the_class_are_expressions_and_python_probes_are_not_keys() -> None:
    reference = OrderFlow.inline.source
    assert isinstance(reference, ConfigExpression)
    assert repr(OrderFlow.inline["source"]) == "inline['source']"
    assert not hasattr(OrderFlow.inline, "_is_step")  # never mistaken for a step
    assert copy.deepcopy(reference) is reference
    assert reference.evaluate({"inline": {"source": "x"}}, "here") == "x"
    with pytest.raises(TypeError):
        OrderFlow.inline.name = "other"  # type: ignore[misc]


def test_an_expression_sees_the_configs_and_its_module() -> None:
    expression = config_expr("_colon_parser(conf.text)['k']")
    assert expression.evaluate({"conf": {"text": "k: v"}}, "here") == "v"
    # Mappings come out as plain dicts, for decorators that check for a dict.
    assert type(config_expr("conf").evaluate({"conf": {"a": {"b": 1}}}, "x")["a"]) is dict
    with pytest.raises(ConfigError, match=r"here: conf.missing cannot be evaluated"):
        ConfigExpression("conf", config="conf").missing.evaluate({"conf": {"a": 1}}, "here")


# --- declarations and values refused, exit code 2 -------------------------------------------------


def _refusal(flow: type, choices: list[ConfigChoice] | None = None, **environ: str) -> str:
    with pytest.raises(UserInputError) as error:
        resolve_configs(flow, choices or [], environ)
    assert error.value.exit_code == 2
    return str(error.value)


def test_declarations_that_can_never_work_are_refused() -> None:
    class Both(FlowSpec):
        conf = Config("conf", default="a.json", default_value={"a": 1})

    class Typo(FlowSpec):
        conf = Config("conf", requried=True)

    class Twice(FlowSpec):
        one = Config("same", default_value={})
        two = Config("same", default_value={})

    assert "default='a.json' and default_value={'a': 1} are both given" in _refusal(Both)
    assert "requried=True is not a keyword of Config. Did you mean 'required'?" in _refusal(Typo)
    assert "configs 'one' and 'two' are both named 'same'" in _refusal(Twice)


def test_values_that_cannot_be_used_are_refused_naming_config_source_and_fix(in_tmp: Path) -> None:
    class Required(FlowSpec):
        conf = Config("conf", required=True)

    assert "config 'conf' is required and no value was given. Pass --config conf PATH" in (
        _refusal(Required)
    )
    message = _refusal(OrderFlow, [ConfigChoice("inlin", "value", "{}", "--config-value")])
    assert "--config-value names config 'inlin'" in message and "Did you mean 'inline'" in message
    message = _refusal(
        OrderFlow,
        [
            ConfigChoice("inline", "value", "{}", "--config-value"),
            ConfigChoice("inline", "file", "x.json", "--config"),
        ],
    )
    assert "config 'inline' of flow 'OrderFlow' is given twice" in message
    message = _refusal(OrderFlow, [ConfigChoice("from_file", "file", "nope.json", "--config")])
    assert "the file 'nope.json' from --config from_file cannot be read" in message
    assert f"environment variable {VALUES_VARIABLE}=" in _refusal(
        OrderFlow, **{VALUES_VARIABLE: "{"}
    )
    assert "is a JSON list, not an object" in _refusal(OrderFlow, **{FILES_VARIABLE: "[]"})
    (in_tmp / "from_file.json").unlink()
    message = _refusal(OrderFlow)
    assert "the file 'from_file.json' from default cannot be read" in message
    assert "give the value with --config-value" in message


def test_a_flow_without_configs_ignores_the_variables_and_refuses_the_options() -> None:
    class NoConfigs(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    assert resolve_configs(NoConfigs, [], {VALUES_VARIABLE: "{not json"}) == RunConfigs()
    message = _refusal(NoConfigs, [ConfigChoice("c", "value", "{}", "--config-value")])
    assert "declares no config" in message


class DecoratedFlow(FlowSpec):
    sizes = Config(
        "sizes", default_value={"retries": 2, "mode": "fast", "n": 3}, help="how big things are"
    )
    count = Parameter("count", default=config_expr("sizes.n * 10"), type=int)
    derived = Parameter("derived", default=lambda ctx: ctx.configs.sizes.n + 1, type=int)

    @environment(vars={"MODE": sizes.mode, "N": config_expr("str(sizes.n)")})
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_decorator_arguments_are_resolved_before_they_are_checked() -> None:
    definition = load_definition(DecoratedFlow, configs=resolve_configs(DecoratedFlow, [], {}))
    (env,) = definition.decorators["start"]
    assert env.attributes["vars"] == {"MODE": "fast", "N": "3"}
    choice = ConfigChoice("sizes", "value", '{"mode": "slow", "n": 5}', "--config-value")
    other = load_definition(DecoratedFlow, configs=resolve_configs(DecoratedFlow, [choice], {}))
    assert other.decorators["start"][0].attributes["vars"] == {"MODE": "slow", "N": "5"}
    # The class keeps the references: each definition resolves them again.
    assert isinstance(
        DecoratedFlow.start._step_decorators[0].given["vars"]["MODE"], ConfigExpression
    )  # type: ignore[attr-defined]


def test_a_bad_reference_in_a_decorator_names_the_step_and_the_decorator() -> None:
    choice = ConfigChoice("sizes", "value", '{"n": 1}', "--config-value")
    with pytest.raises(ConfigError) as error:
        load_definition(DecoratedFlow, configs=resolve_configs(DecoratedFlow, [choice], {}))
    message = str(error.value)
    assert message.startswith("flow 'DecoratedFlow', step 'start', @environment: sizes.mode")
    assert "The flow's configs: sizes" in message and error.value.exit_code == 2


def test_parameter_defaults_read_the_configs() -> None:
    configs = resolve_configs(DecoratedFlow, [], {})
    values = resolve_parameters(
        DecoratedFlow, {}, "DecoratedFlow", environ={}, configs=configs.namespace()
    )
    assert values == {"count": 30, "derived": 4}
    # The command line still wins over a default read from a config.
    given = resolve_parameters(
        DecoratedFlow, {"count": "7"}, "DecoratedFlow", environ={}, configs=configs.namespace()
    )
    assert given["count"] == 7


def _linear(*bases: type) -> type:
    class Linear(*bases):  # type: ignore[misc]
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    return Linear


def test_a_config_stored_under_the_name_of_a_step_or_parameter_is_refused() -> None:
    # A base class brings the config; the flow reuses its attribute for a step or a
    # parameter (both are artifacts of the run, as the config is).
    class ConfigBase(FlowSpec):
        end = Config("settings", default_value={})

    class ParameterBase(FlowSpec):
        settings = Parameter("settings", default=1)

    class ConfigOverParameter(ParameterBase):
        settings = Config("settings", default_value={})  # type: ignore[assignment]

    with pytest.raises(
        UserInputError, match="config 'settings' is stored as 'end', the name of a step"
    ):
        load_definition(_linear(ConfigBase))
    with pytest.raises(UserInputError, match="is stored as 'settings', the name of a parameter"):
        load_definition(_linear(ConfigOverParameter))
    load_definition(_linear(FlowSpec))  # and without a clash, nothing is refused


# --- the command line: exit code 2, one paragraph ------------------------------------------------


def test_the_command_line_refuses_a_bad_value_with_exit_code_2(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = flow_main(OrderFlow, ["check", "--config-value", "inline", "{oops"], Console(out, err))
    assert code == 2
    assert "error: flow 'OrderFlow', config 'inline': the value from --config-value is not " in (
        err.getvalue()
    )
    assert "Traceback" not in err.getvalue()
    # Before the subcommand (Metaflow's place) as well as after it.
    out, err = io.StringIO(), io.StringIO()
    code = flow_main(
        OrderFlow, ["--config-value", "inline", '{"a": 1}', "check"], Console(out, err)
    )
    assert code == 0, err.getvalue()


def test_help_lists_the_configs_before_and_after_the_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit) as done:
            flow_main(DecoratedFlow, argv)
        assert done.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--config NAME PATH" in text and "--config-value NAME JSON" in text
        assert "the flow's configs: sizes: how big things are" in text


# --- real runs -----------------------------------------------------------------------------------

CONFIG_FLOW = """
import json
import os

from batchwright import (
    Config, FlowSpec, Parameter, config_expr, current, environment, retry, step
)


def silly_parser(text):
    key, value = text.split(":")
    return {key: value.strip()}


def param_default(ctx):
    return ctx.configs.config2.default_param + 1


class ConfigFlow(FlowSpec):
    config = Config(
        "config",
        default_value={"value": 42, "str_value": "foobar", "nested": {"value": 43}, "retries": 1},
    )
    silly_config = Config("silly_config", required=True, parser=silly_parser, default="silly.txt")
    config2 = Config("config2")
    from_file = Config("from_file", default_value={"origin": "default"})

    default_from_config = Parameter(
        "default_from_config", default=config_expr("config2").default_param, type=int
    )
    default_from_func = Parameter("default_from_func", default=param_default, type=int)

    @retry(times=config.retries, minutes_between_retries=config_expr("config.retries - 1"))
    @environment(vars={"normal": config.str_value, "stringify": config_expr("str(config.value)")})
    @step
    def start(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails: @retry(times=config.retries) retries it")
        self.env = {"normal": os.environ["normal"], "stringify": os.environ["stringify"]}
        self.reads = {
            "attribute": self.config.nested.value,
            "item": self.config["nested"]["value"],
            "silly": self.silly_config.baz,
            "config2": self.config2.default_param,
            "from_file": self.from_file.origin,
            "params": [self.default_from_config, self.default_from_func],
        }
        try:
            self.config.value = 5
        except TypeError:
            self.refused = True
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.join)

    @step
    def right(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.in_join = self.config.value
        self.next(self.end)

    @step
    def end(self):
        print("END", json.dumps(self.config, sort_keys=True))


if __name__ == "__main__":
    ConfigFlow()
"""


@pytest.fixture
def config_flow(tmp_path: Path) -> Path:
    (tmp_path / "silly.txt").write_text("baz:amazing\n")
    return write_flow(tmp_path, "config_flow", CONFIG_FLOW)


def test_a_run_reads_configs_in_steps_parameters_and_decorators(
    config_flow: Path,
    run_flow: RunFlow,
    datastore: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "file.json").write_text('{"origin": "--config"}')
    monkeypatch.setenv(VALUES_VARIABLE, json.dumps({"config2": {"default_param": 123}}))
    done = run_flow(config_flow, "run", "--config", "from_file", str(tmp_path / "file.json"))
    assert done.returncode == 0, done.output
    run = Flow("ConfigFlow", str(datastore)).latest_run
    start = run["start"].task.data
    assert start.env == {"normal": "foobar", "stringify": "42"}
    assert start.reads == {
        "attribute": 43,
        "item": 43,
        "silly": "amazing",
        "config2": 123,
        "from_file": "--config",
        "params": [123, 124],
    }
    assert start.refused is True
    assert run["join"].task.data.in_join == 42  # a join inherits the configs
    stored = run["end"].task.data.config
    assert isinstance(stored, ConfigValue) and stored.nested.value == 43
    assert 'END {"nested": {"value": 43}, "retries": 1, "str_value": "foobar", "value": 42}' in (
        done.stdout
    )
    # @retry(times=config.retries): the first attempt failed, the retry succeeded.
    assert "attempt 0 failed" in done.output


def test_the_environment_variables_and_the_command_line_choose_the_values(
    config_flow: Path,
    run_flow: RunFlow,
    datastore: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "other_silly.txt").write_text("baz:from the variable")
    (tmp_path / "file.json").write_text('{"origin": "METAFLOW_FLOW_CONFIG"}')
    monkeypatch.setenv(
        FILES_VARIABLE,
        json.dumps({"silly_config": str(tmp_path / "other_silly.txt"), "from_file": "file.json"}),
    )
    monkeypatch.setenv(VALUES_VARIABLE, json.dumps({"config2": {"default_param": 1}}))
    config = {"value": 7, "str_value": "cli", "nested": {"value": 8}, "retries": 1}
    done = run_flow(
        config_flow,
        "--config-value",
        "config",
        json.dumps(config),
        "run",
        "--config-value",
        "config2",
        '{"default_param": 10}',
    )
    assert done.returncode == 0, done.output
    start = Flow("ConfigFlow", str(datastore)).latest_run["start"].task.data
    assert start.env == {"normal": "cli", "stringify": "7"}
    assert start.reads == {
        "attribute": 8,
        "item": 8,
        "silly": "from the variable",
        "config2": 10,
        "from_file": "METAFLOW_FLOW_CONFIG",
        "params": [10, 11],
    }


def test_a_bad_config_stops_the_run_before_any_task(
    config_flow: Path, run_flow: RunFlow, datastore: Path
) -> None:
    done = run_flow(
        config_flow,
        "run",
        "--config-value",
        "config2",
        '{"default_param": 1}',
        "--config-value",
        "config",
        '{"retries": -1, "str_value": "x", "value": 1}',
    )
    assert done.returncode == 2
    assert "step 'start', @retry: times=-1 must be an integer >= 0" in done.stderr
    assert "Traceback" not in done.stderr and "started" not in done.stdout
    assert not datastore.exists()
    # A required config's file missing, and a config a parameter default needs absent.
    (config_flow.parent / "silly.txt").unlink()
    done = run_flow(config_flow, "run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "config 'silly_config': the file 'silly.txt' from default cannot be read" in done.stderr
    (config_flow.parent / "silly.txt").write_text("baz:amazing")
    done = run_flow(config_flow, "run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "parameter 'default_from_config': config_expr('config2').default_param cannot be" in (
        done.stderr
    )


RESUME_FLOW = """
import os

from batchwright import Config, FlowSpec, current, environment, retry, step


class ResumeConfigFlow(FlowSpec):
    settings = Config("settings", required=True)

    @step
    def start(self):
        self.next(self.middle)

    @retry(times=settings.retries, minutes_between_retries=0)
    @environment(vars={"GREETING": settings.greeting})
    @step
    def middle(self):
        if os.environ.get("FAIL_MIDDLE"):
            raise RuntimeError("failing on purpose")
        if os.environ.get("FAIL_FIRST") and current.retry_count == 0:
            raise RuntimeError("the first attempt fails: the run's @retry retries it")
        self.seen = [self.settings.greeting, os.environ["GREETING"]]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ResumeConfigFlow()
"""


def test_resume_runs_with_the_configs_of_the_run_it_resumes(
    tmp_path: Path, run_flow: RunFlow, datastore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write_flow(tmp_path, "resume_config_flow", RESUME_FLOW)
    (tmp_path / "settings.json").write_text('{"greeting": "hello", "retries": 1}')
    monkeypatch.setenv("FAIL_MIDDLE", "1")
    failed = run_flow(flow, "run", "--config", "settings", str(tmp_path / "settings.json"))
    assert failed.returncode == 1, failed.output
    monkeypatch.delenv("FAIL_MIDDLE")
    (tmp_path / "settings.json").unlink()  # the run keeps the value, not the file
    # Other values given to resume are refused, not silently ignored...
    refused = run_flow(flow, "resume", "--config-value", "settings", '{"greeting": "other"}')
    assert refused.returncode == 2
    assert "a resume runs with the configs of the run it resumes" in refused.stderr
    # ...and the variables do not change them either: the steps and the plan (@retry's
    # times, decided by the orchestrator) use the run's values.
    monkeypatch.setenv(
        VALUES_VARIABLE, json.dumps({"settings": {"greeting": "other", "retries": 0}})
    )
    monkeypatch.setenv("FAIL_FIRST", "1")
    resumed = run_flow(flow, "resume", failed.run_id or "")
    assert resumed.returncode == 0, resumed.output
    run = Flow("ResumeConfigFlow", str(datastore))[resumed.run_id or ""]
    assert run["middle"].task.data.seen == ["hello", "hello"]
    assert run["end"].task.data.settings == {"greeting": "hello", "retries": 1}
    # Without the variable the required config still has the run's value.
    monkeypatch.delenv(VALUES_VARIABLE)
    again = run_flow(flow, "resume", failed.run_id or "")
    assert again.returncode == 0, again.output
