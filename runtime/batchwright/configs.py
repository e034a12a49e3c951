"""Flow configs: ``Config``, ``config_expr`` and the values a run resolves them to.

A config is a class attribute of the flow, like a parameter, but its value is a whole
(nested) mapping read from a file or given as JSON, and it is known *before* the flow's
steps and decorators are checked: decorator arguments and parameter defaults may refer
to it (``@batch(memory=config.memory)``, ``Parameter("lr", default=config.train.lr)``,
``@environment(vars={"MODE": config_expr("config.mode.upper()")})``).

Where a config's value comes from, highest first (as Metaflow's):

1. ``--config NAME PATH`` (a file) or ``--config-value NAME JSON`` on the command line;
2. the environment variables ``METAFLOW_FLOW_CONFIG`` (JSON ``{"NAME": "PATH"}``) and
   ``METAFLOW_FLOW_CONFIG_VALUE`` (JSON ``{"NAME": {...}}``);
3. the declaration: ``default`` (a path, or a callable of the context giving one) or
   ``default_value`` (a mapping, JSON text, or a callable of the context giving either).

The text is parsed as JSON unless the config names a ``parser``. The orchestrator
resolves every config ONCE, before anything is submitted (:func:`resolve_configs`); the
values are stored with the run as read-only artifacts (``self.<attribute>``, a
:class:`ConfigValue`), so tasks (local or on AWS Batch) and ``resume`` see the same
values without the files. A task that needs them for its own decorator check reads them
from its inputs (:func:`configs_from_artifacts`).
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

from batchwright.decorators.base import did_you_mean
from batchwright.errors import UserInputError
from batchwright.identity import current_user

#: The environment variable naming config files: ``{"NAME": "PATH", ...}``.
FILES_VARIABLE = "METAFLOW_FLOW_CONFIG"
#: The environment variable giving config values: ``{"NAME": {...} or "TEXT", ...}``.
VALUES_VARIABLE = "METAFLOW_FLOW_CONFIG_VALUE"


class ConfigError(UserInputError):
    """A config is declared wrongly, or its value cannot be found, read or parsed, or an
    expression over configs cannot be evaluated (exit code 2, before anything runs)."""


# -- the value -------------------------------------------------------------------------------


def _immutable(*_: Any, **__: Any) -> NoReturn:
    raise TypeError("a config value is read-only; copy it with .to_dict() to change it")


class ConfigValue(dict[str, Any]):
    """A config's value: a read-only mapping whose keys also read as attributes
    (``config.nested.value`` is ``config["nested"]["value"]``). Nested mappings are
    ConfigValues too. Every change (``config.x = 1``, ``config["x"] = 1``, ``update``...)
    raises TypeError.

    A ``dict`` subclass, so ``json.dumps(config)`` and ``isinstance(config, dict)`` work;
    :meth:`to_dict` gives a plain, changeable copy.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__({key: _wrap(value) for key, value in (data or {}).items()})

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            keys = ", ".join(map(str, self)) or "none"
            raise AttributeError(
                f"the config has no key '{name}'.{did_you_mean(name, map(str, self))} "
                f"Its keys: {keys}."
            ) from None

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        _immutable()

    def __delattr__(self, name: str) -> NoReturn:
        _immutable()

    __setitem__ = _immutable
    __delitem__ = _immutable
    __ior__ = _immutable
    clear = _immutable
    pop = _immutable
    popitem = _immutable
    setdefault = _immutable
    update = _immutable

    def __reduce__(self) -> tuple[type[ConfigValue], tuple[dict[str, Any]]]:
        # Pickled as its plain content: the default dict pickling would call __setitem__.
        return (type(self), (self.to_dict(),))

    def __copy__(self) -> ConfigValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ConfigValue:
        return self

    def __dir__(self) -> list[str]:
        return sorted({*dir(type(self)), *(k for k in self if k.isidentifier())})

    def copy(self) -> dict[str, Any]:
        """A plain, changeable copy (as :meth:`to_dict`)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The content as plain dicts and lists, changeable."""
        return {key: _plain(value) for key, value in self.items()}


def _wrap(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, list | tuple):
        return type(value)(_wrap(item) for item in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    return value


# -- expressions over configs -----------------------------------------------------------------


class ConfigExpression:
    """A value known once the run's configs are: ``config.key``, ``config["key"]``, or
    ``config_expr("python expression over configs")``, optionally followed by more
    ``.key`` / ``[key]`` steps.

    Usable as a decorator argument (anywhere inside it: ``vars={"X": config.x}``) and as
    a parameter's default (it is called with the parameter's context, whose ``configs``
    it reads). Evaluated by :meth:`evaluate`; mappings come out as plain dicts.
    """

    __slots__ = ("_config", "_globals", "_path", "_text")
    _config: str | None
    _globals: Mapping[str, Any] | None
    _path: tuple[tuple[str, Any], ...]
    _text: str

    def __init__(
        self,
        text: str,
        namespace: Mapping[str, Any] | None = None,
        path: tuple[tuple[str, Any], ...] = (),
        config: str | None = None,
    ) -> None:
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_globals", namespace)
        object.__setattr__(self, "_path", path)
        #: The config this refers to directly (``config.x``), or None (``config_expr``).
        object.__setattr__(self, "_config", config)

    def _then(self, step: tuple[str, Any]) -> ConfigExpression:
        return ConfigExpression(self._text, self._globals, (*self._path, step), self._config)

    def __getattr__(self, name: str) -> ConfigExpression:
        # Names starting with '_' are Python's own probes (copy, pickle, inspect,
        # hasattr(x, "_is_step")...): never a key (use ["_key"] for such keys).
        if name.startswith("_"):
            raise AttributeError(name)
        return self._then(("attribute", name))

    def __getitem__(self, key: Any) -> ConfigExpression:
        return self._then(("item", key))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise TypeError("a config expression is read-only")

    def __copy__(self) -> ConfigExpression:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ConfigExpression:
        # Immutable, and it keeps its module's globals, which must never be copied.
        return self

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            f"{self!r} is known only when the run's configs are: it cannot be unpacked or "
            "iterated where the flow is defined. Refer to the keys you need one by one."
        )

    def __repr__(self) -> str:
        text = self._text if self._config is not None else f"config_expr({self._text!r})"
        for kind, key in self._path:
            text += f".{key}" if kind == "attribute" else f"[{key!r}]"
        return text

    def __call__(self, context: Any) -> Any:
        """The value, for a parameter's default: ``context.configs`` holds the run's
        configs by name."""
        configs = getattr(context, "configs", None)
        if configs is None:
            raise ConfigError(
                f"{self!r} is used where the run's configs are not known (e.g. in a config's "
                "own default). Use a literal value there."
            )
        where = f"flow '{getattr(context, 'flow_name', '?')}', parameter "
        return self.evaluate(configs, where + f"'{getattr(context, 'parameter_name', '?')}'")

    def evaluate(self, configs: Mapping[str, Any], where: str) -> Any:
        """The expression's value with ``configs`` (config name -> value); mappings as
        plain dicts.

        Raises:
            ConfigError: names ``where`` (e.g. ``flow 'F', step 's', @batch``), the
                expression and the problem.
        """
        values = {name: _wrap(value) for name, value in configs.items()}
        try:
            if self._config is not None:
                if self._config not in values:
                    raise NameError(f"no config named '{self._config}'")
                value = values[self._config]
            else:
                namespace = dict(self._globals or {})
                namespace.setdefault("__builtins__", builtins)
                value = eval(compile(self._text, "<config_expr>", "eval"), namespace, values)
            for kind, key in self._path:
                value = _attribute(value, key) if kind == "attribute" else value[key]
        except Exception as error:
            known = ", ".join(configs) or "none"
            raise ConfigError(
                f"{where}: {self!r} cannot be evaluated ({type(error).__name__}: "
                f"{str(error).strip(chr(39)) if isinstance(error, KeyError) else error}). "
                f"The flow's configs: {known}. Fix the expression, or the config's value."
            ) from None
        return _plain(value)


def _attribute(value: Any, key: str) -> Any:
    if isinstance(value, Mapping) and key in value:
        return value[key]
    return getattr(value, key)


def config_expr(expr: str) -> ConfigExpression:
    """An expression over the flow's configs, evaluated once the run's configs are known:
    ``@environment(vars={"N": config_expr("str(config.size * 2)")})``. The expression
    sees the configs by name and the globals of the module that calls this (its own
    functions and imports)."""
    caller = sys._getframe(1).f_globals  # the flow module, as Metaflow's
    return ConfigExpression(expr, caller)


def contains_expression(value: Any) -> bool:
    """Whether ``value`` is, or holds (in dicts, lists, tuples, sets), a config
    expression."""
    if isinstance(value, ConfigExpression):
        return True
    if isinstance(value, Mapping):
        return any(contains_expression(k) or contains_expression(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(contains_expression(item) for item in value)
    return False


def resolve_value(value: Any, configs: Mapping[str, Any], where: str) -> Any:
    """``value`` with every config expression in it replaced by its value.

    Raises:
        ConfigError: an expression cannot be evaluated.
    """
    if isinstance(value, ConfigExpression):
        return value.evaluate(configs, where)
    if isinstance(value, Mapping):
        return {
            resolve_value(k, configs, where): resolve_value(v, configs, where)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(resolve_value(item, configs, where) for item in value)
    return value


# -- the declaration ----------------------------------------------------------------------------


class ConfigContext(NamedTuple):
    """Passed to a callable ``default`` / ``default_value`` of a config (the fields of
    a parameter's context; ``configs`` is None: a config's default cannot read configs)."""

    flow_name: str
    parameter_name: str
    user_name: str
    configs: None = None


class Config:
    """A config of the flow (a class attribute): a nested mapping known before the run
    starts, readable in steps as ``self.<attribute>`` and usable in decorator arguments
    and parameter defaults (``config.key``, ``config_expr("...")``).

    Args:
        name: the config's name: what ``--config NAME PATH``, ``--config-value NAME
            JSON``, the environment variables and ``config_expr`` expressions call it.
        default: the path of the file read when no value is given (a callable receives a
            :class:`ConfigContext` and returns the path).
        default_value: the value when none is given: a mapping, text to parse, or a
            callable receiving a :class:`ConfigContext` and returning either. Give
            ``default`` or ``default_value``, not both.
        help: shown by ``--help``.
        required: refuse to run when no value, file or default gives one (otherwise the
            config's value is None).
        parser: parses the file's text or the given text into a mapping: a callable, or
            the dotted name of one (``"yaml_parsers.load"``); JSON when omitted.
        plain: keep the parser's result as it is (any object, not only a mapping), not
            as a :class:`ConfigValue`; without a parser the value is the text itself.
    """

    def __init__(
        self,
        name: str,
        default: str | os.PathLike[str] | Callable[[ConfigContext], str] | None = None,
        default_value: Any = None,
        help: str | None = None,
        required: bool = False,
        parser: str | Callable[[str], Any] | None = None,
        plain: bool = False,
        **unknown: Any,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "attribute", name)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "default_value", default_value)
        object.__setattr__(self, "help", help or "")
        object.__setattr__(self, "required", required)
        object.__setattr__(self, "parser", parser)
        object.__setattr__(self, "plain", plain)
        #: Keywords Config does not take, refused by check_declaration (not here: a
        #: class body raising would end the flow file's import with a traceback).
        object.__setattr__(self, "unknown", dict(unknown))

    name: str
    attribute: str
    default: Any
    default_value: Any
    help: str
    required: bool
    parser: str | Callable[[str], Any] | None
    plain: bool
    unknown: dict[str, Any]

    def __repr__(self) -> str:
        return f"Config({self.name!r})"

    # -- on the flow class --------------------------------------------------------------

    def __set_name__(self, owner: type, attribute: str) -> None:
        object.__setattr__(self, "attribute", attribute)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        # Stored with the run (the _parameters pseudo-task) and inherited by every step.
        return instance._load_artifact(self.attribute)

    def __set__(self, instance: Any, value: Any) -> NoReturn:
        raise AttributeError(
            f"config '{self.name}' is read-only inside the flow; store a changed copy "
            f"under another name (self.my_{self.attribute} = self.{self.attribute}.to_dict())"
        )

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise TypeError(f"config '{self.name}' is read-only")

    def __getattr__(self, name: str) -> ConfigExpression:
        # ``config.key`` in the class body: a reference resolved once the run's configs
        # are known. Names starting with '_' are Python's probes, never keys.
        if name.startswith("_"):
            raise AttributeError(name)
        return ConfigExpression(self.name, config=self.name).__getattr__(name)

    def __getitem__(self, key: Any) -> ConfigExpression:
        return ConfigExpression(self.name, config=self.name)[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(ConfigExpression(self.name, config=self.name))

    # -- orchestrator side -----------------------------------------------------------------

    def check_declaration(self, flow_name: str) -> None:
        """Refuses a declaration that can never work.

        Raises:
            ConfigError: an unknown keyword, both ``default`` and ``default_value``, a
                name that is not usable on the command line, or a default, parser or
                required flag of the wrong kind.
        """
        where = f"flow '{flow_name}', config '{self.name}'"
        if self.unknown:
            key, value = next(iter(self.unknown.items()))
            known = ("name", "default", "default_value", "help", "required", "parser", "plain")
            raise ConfigError(
                f"{where}: {key}={value!r} is not a keyword of Config.{did_you_mean(key, known)} "
                f"It takes: {', '.join(known)}."
            )
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError(
                f"flow '{flow_name}': config name {self.name!r} is not a Python identifier, "
                "which --config NAME and config_expr() expressions need. Use letters, digits "
                "and '_', e.g. Config('train_config')."
            )
        if self.default is not None and self.default_value is not None:
            raise ConfigError(
                f"{where}: default={self.default!r} and default_value="
                f"{self.default_value!r} are both given. Give default (a file's path) or "
                "default_value (the value itself), not both."
            )
        if self.default is not None and not (
            callable(self.default) or isinstance(self.default, str | os.PathLike)
        ):
            raise ConfigError(
                f"{where}: default={self.default!r} is not a path. default is the path of "
                "the config's file; give the value itself as default_value=."
            )
        if not (
            self.plain
            or self.default_value is None
            or callable(self.default_value)
            or isinstance(self.default_value, str | Mapping)
        ):
            raise ConfigError(
                f"{where}: default_value={self.default_value!r} is not a mapping or text. "
                "Give a dict, JSON text, or a function returning either (or declare "
                "plain=True to keep any other value)."
            )
        if self.parser is not None and not (callable(self.parser) or isinstance(self.parser, str)):
            raise ConfigError(
                f"{where}: parser={self.parser!r} is neither a function nor the dotted name "
                "of one. Pass e.g. parser=my_module.parse or parser='my_module.parse'."
            )
        if not isinstance(self.required, bool):
            raise ConfigError(f"{where}: required={self.required!r} must be True or False.")

    def parse(self, text: str, flow_name: str, source: str) -> Any:
        """The value of ``text`` (from ``source``, for messages): the parser's result, or
        JSON; a ConfigValue unless ``plain``.

        Raises:
            ConfigError: the parser cannot be found or fails, or the result is not a
                mapping.
        """
        where = f"flow '{flow_name}', config '{self.name}'"
        if self.parser is None:
            if self.plain:
                return text
            try:
                value = json.loads(text)
            except ValueError as error:
                raise ConfigError(
                    f"{where}: the value from {source} is not valid JSON ({error}). Give a "
                    'JSON object, e.g. {"key": 1}, or declare a parser= for this format.'
                ) from None
        else:
            parser = self._parser(where)
            try:
                value = parser(text)
            except Exception as error:
                raise ConfigError(
                    f"{where}: parser {_name_of(parser)} failed on the value from {source} "
                    f"({type(error).__name__}: {error}). Fix the value, or the parser."
                ) from None
        if self.plain:
            return value
        if not isinstance(value, Mapping):
            got = type(value).__name__
            made = "JSON" if self.parser is None else f"parser {_name_of(self.parser)}"
            raise ConfigError(
                f"{where}: the value from {source} is a {got} ({value!r:.60}), not a mapping "
                f"(as read by {made}). A config is a mapping of keys to values, e.g. "
                '{"key": 1}; declare plain=True to keep any other value.'
            )
        return ConfigValue(value)

    def _parser(self, where: str) -> Callable[[str], Any]:
        parser = self.parser
        if callable(parser):
            return parser
        assert isinstance(parser, str)
        module_name, _, function = parser.rpartition(".")
        if not module_name or not function:
            raise ConfigError(
                f"{where}: parser={parser!r} is not a dotted name (module.function). Pass "
                "e.g. parser='my_parsers.parse_yaml', or the function itself."
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(
                f"{where}: parser={parser!r}: module '{module_name}' cannot be imported "
                f"({error}). Install it, or pass the function itself."
            ) from None
        found = getattr(module, function, None)
        if not callable(found):
            raise ConfigError(
                f"{where}: parser={parser!r}: module '{module_name}' has no function "
                f"'{function}'. Pass the dotted name of a function."
            )
        return found  # type: ignore[no-any-return]


def _name_of(parser: Any) -> str:
    if isinstance(parser, str):
        return repr(parser)
    return repr(getattr(parser, "__qualname__", getattr(parser, "__name__", parser)))


def flow_configs(flow_class: type) -> dict[str, Config]:
    """The flow's configs by attribute, in definition order (base classes first)."""
    found: dict[str, Config] = {}
    for klass in reversed(flow_class.__mro__):
        for attribute, value in vars(klass).items():
            if isinstance(value, Config):
                found[attribute] = value
    return found


# -- the run's values ---------------------------------------------------------------------------


class ConfigChoice(NamedTuple):
    """One config value chosen on the command line or in an environment variable."""

    name: str
    #: "file" (a path to read) or "value" (the text itself).
    kind: str
    text: str
    #: Where it was given, for messages: ``--config``, ``METAFLOW_FLOW_CONFIG``...
    source: str


@dataclass(frozen=True)
class RunConfigs:
    """The configs of one run: each config's value by name (None when it has none), and
    where it came from."""

    values: Mapping[str, Any] = field(default_factory=dict)
    #: Config name -> the flow class attribute it is stored under.
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Config name -> where its value came from (``--config-value``, ``default``...).
    sources: Mapping[str, str] = field(default_factory=dict)

    def artifacts(self) -> dict[str, Any]:
        """The values to store with the run, by attribute."""
        return {self.attributes[name]: value for name, value in self.values.items()}

    def namespace(self) -> ConfigValue:
        """The configs by name, as ``ctx.configs`` of a parameter's default gives them."""
        return ConfigValue(dict(self.values))

    def to_json(self) -> str:
        """The values and their attributes as JSON (a deployed flow carries its configs
        in its state machine); :meth:`from_json` reads it back.

        Raises:
            TypeError: a value JSON cannot hold (a custom parser's object).
        """
        body = {"values": _plain(dict(self.values)), "attributes": dict(self.attributes)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunConfigs:
        """The configs :meth:`to_json` wrote (read-only values again)."""
        body = json.loads(text) if text else {}
        values = {name: _wrap(value) for name, value in body.get("values", {}).items()}
        sources = dict.fromkeys(values, "deployment")
        return cls(values, dict(body.get("attributes", {})), sources)


def _environment_choices(environ: Mapping[str, str]) -> list[ConfigChoice]:
    choices: list[ConfigChoice] = []
    for variable, kind in ((FILES_VARIABLE, "file"), (VALUES_VARIABLE, "value")):
        raw = environ.get(variable)
        if raw is None or not raw.strip():
            continue
        example = '{"config": "config.json"}' if kind == "file" else '{"config": {"key": 1}}'
        try:
            loaded = json.loads(raw)
        except ValueError as error:
            loaded = error
        if not isinstance(loaded, dict):
            problem = (
                f"is not valid JSON ({loaded})"
                if isinstance(loaded, ValueError)
                else f"is a JSON {type(loaded).__name__}, not an object"
            )
            raise ConfigError(
                f"environment variable {variable}={raw!r} {problem}. Set it to a JSON object "
                f"of config names to {'paths' if kind == 'file' else 'values'}, e.g. "
                f"{variable}='{example}'."
            )
        for name, value in loaded.items():
            if kind == "file" and not isinstance(value, str):
                raise ConfigError(
                    f"environment variable {variable}: config '{name}' is given {value!r}, not "
                    f"a path. Give each config's file path as a string, e.g. {variable}="
                    f"'{example}'."
                )
            text = value if isinstance(value, str) else json.dumps(value)
            choices.append(ConfigChoice(name, kind, text, variable))
    return choices


def _check_choices(
    choices: list[ConfigChoice], configs: Mapping[str, Config], flow_name: str
) -> dict[str, ConfigChoice]:
    """The choices by name, refusing unknown names and two values for one config."""
    chosen: dict[str, ConfigChoice] = {}
    for choice in choices:
        if choice.name not in configs:
            known = ", ".join(configs) or "none"
            raise ConfigError(
                f"{choice.source} names config '{choice.name}', which flow '{flow_name}' "
                f"does not declare.{did_you_mean(choice.name, configs)} Its configs: {known}."
            )
        earlier = chosen.get(choice.name)
        if earlier is not None:
            raise ConfigError(
                f"config '{choice.name}' of flow '{flow_name}' is given twice ({earlier.source} "
                f"and {choice.source}). Give it once: a file (--config NAME PATH) or a value "
                "(--config-value NAME JSON)."
            )
        chosen[choice.name] = choice
    return chosen


def _read_file(path: str, config: Config, flow_name: str, source: str) -> str:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as stream:
            return stream.read()
    except OSError as error:
        fix = (
            "Create the file, or give the value with --config-value NAME JSON."
            if source == "default"
            else "Pass the path of a readable file."
        )
        raise ConfigError(
            f"flow '{flow_name}', config '{config.name}': the file {path!r} from {source} "
            f"cannot be read ({error.strerror or error}). {fix}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"flow '{flow_name}', config '{config.name}': the file {path!r} from {source} is "
            "not UTF-8 text. Save it as UTF-8."
        ) from None


def _call_default(function: Callable[..., Any], config: Config, flow_name: str, key: str) -> Any:
    context = ConfigContext(flow_name, config.name, current_user())
    try:
        return function(context)
    except UserInputError:
        raise
    except Exception as error:
        raise ConfigError(
            f"flow '{flow_name}', config '{config.name}': the {key} function failed "
            f"({type(error).__name__}: {error}). Fix the function."
        ) from None


def _resolve_one(config: Config, choice: ConfigChoice | None, flow_name: str) -> tuple[Any, str]:
    """One config's value and the source it came from."""
    if choice is not None:
        text = choice.text
        if choice.kind == "file":
            text = _read_file(choice.text, config, flow_name, f"{choice.source} {choice.name}")
        return config.parse(text, flow_name, choice.source), choice.source
    if config.default is not None:
        path = config.default
        if callable(path):
            path = _call_default(path, config, flow_name, "default")
            if path is None:
                return _missing(config, flow_name)
        path = os.fspath(path)
        return config.parse(_read_file(path, config, flow_name, "default"), flow_name, "default"), (
            "default"
        )
    value = config.default_value
    if callable(value):
        value = _call_default(value, config, flow_name, "default_value")
    if value is None:
        return _missing(config, flow_name)
    if isinstance(value, str):
        return config.parse(value, flow_name, "default_value"), "default_value"
    if config.plain:
        return value, "default_value"
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"flow '{flow_name}', config '{config.name}': default_value gave {value!r}, not "
            "a mapping or text. Return a dict or JSON text."
        )
    return ConfigValue(value), "default_value"


def _missing(config: Config, flow_name: str) -> tuple[None, str]:
    if config.required:
        raise ConfigError(
            f"flow '{flow_name}': config '{config.name}' is required and no value was given. "
            f"Pass --config {config.name} PATH or --config-value {config.name} JSON (before "
            f'or after the subcommand), or set {VALUES_VARIABLE}=\'{{"{config.name}": '
            "{...}}'."
        )
    return None, "none"


def resolve_configs(
    flow_class: type,
    choices: tuple[ConfigChoice, ...] | list[ConfigChoice] = (),
    environ: Mapping[str, str] | None = None,
) -> RunConfigs:
    """Every config's value for a new run: from ``choices`` (the command line), else the
    environment variables of ``environ`` (default ``os.environ``), else the declaration.

    Raises:
        ConfigError: a declaration is wrong; a choice or variable names no config of the
            flow, or gives one config twice; a file cannot be read; a value cannot be
            parsed; a required config has no value. The message names the config, the
            source and the fix.
    """
    configs = {config.name: config for config in flow_configs(flow_class).values()}
    flow_name = flow_class.__name__
    if not configs:
        if choices:
            raise ConfigError(
                f"{choices[0].source} {choices[0].name}: flow '{flow_name}' declares no "
                "config. Declare one in the flow class (name = Config('name', ...)), or drop "
                "the option."
            )
        return RunConfigs()
    seen: dict[str, str] = {}
    for attribute, config in flow_configs(flow_class).items():
        config.check_declaration(flow_name)
        if config.name in seen:
            raise ConfigError(
                f"flow '{flow_name}': configs '{seen[config.name]}' and '{attribute}' are both "
                f"named '{config.name}'. Give each config its own name."
            )
        seen[config.name] = attribute
    given = _check_choices(list(choices), configs, flow_name)
    environment = _check_choices(
        _environment_choices(os.environ if environ is None else environ), configs, flow_name
    )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, config in configs.items():
        values[name], sources[name] = _resolve_one(
            config, given.get(name) or environment.get(name), flow_name
        )
    return RunConfigs(values, {c.name: c.attribute for c in configs.values()}, sources)


def configs_from_artifacts(flow_class: type, artifacts: Mapping[str, Any]) -> RunConfigs:
    """The configs a run stored (``artifacts``: attribute -> value), for ``resume`` and
    for tasks. A config without a stored value is refused.

    Raises:
        ConfigError: the run has no value for a config the flow declares now.
    """
    declared = flow_configs(flow_class)
    values: dict[str, Any] = {}
    for attribute, config in declared.items():
        if attribute not in artifacts:
            raise ConfigError(
                f"flow '{flow_class.__name__}': the run has no stored value for config "
                f"'{config.name}' (it was started before the flow declared it). Start a new "
                "run."
            )
        values[config.name] = artifacts[attribute]
    return RunConfigs(
        values,
        {config.name: attribute for attribute, config in declared.items()},
        dict.fromkeys(values, "the run"),
    )
