"""Flow parameters: ``Parameter``, ``IncludeFile`` and ``JSONType``.

A parameter is a class attribute of the flow. ``python flow.py run --name value`` sets
it, or else the environment variable ``METAFLOW_RUN_<NAME>`` (Metaflow's: the name
upper-cased, ``-`` as ``_``), or else its default; inside steps ``self.<attribute>`` reads
the value (read-only). The orchestrator
converts and checks every value before any task runs, and stores the values as the
artifacts of the run's ``_parameters`` pseudo-task, which the ``start`` step inherits.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from batchwright.configs import ConfigExpression
from batchwright.decorators.base import did_you_mean
from batchwright.errors import ParameterError
from batchwright.identity import current_user


class JSONType:
    """Marker type: the parameter's value is JSON text, parsed into Python values."""


class ParameterContext(NamedTuple):
    """Passed to a callable default: ``default=lambda ctx: ...``."""

    flow_name: str
    parameter_name: str
    user_name: str
    #: The run's configs by name (``ctx.configs.NAME.key``); None where they are unknown.
    configs: Any = None


_SCALARS: tuple[type, ...] = (str, int, float, bool)

#: Prefix of the environment variables that give parameter values (Metaflow's).
ENVIRONMENT_PREFIX = "METAFLOW_RUN_"


class Parameter:
    """A run-time argument of the flow.

    Args:
        name: the command-line name (``--name``); the artifact is the class attribute.
        default: the value when not given; a callable receives a ParameterContext.
        type: str, int, float, bool or JSONType; inferred from ``default`` when omitted.
        help: text shown by ``run --help``.
        required: fail before running when no value and no default is given.
        show_default: show the default in ``run --help`` (as Metaflow's).
        separator: split a ``str`` value at this string into a list of strings, as
            Metaflow's ``separator`` does (``--letters a,b`` gives ``["a", "b"]``).

    A keyword Metaflow's ``Parameter`` does not take either (a typo such as
    ``requried=True``) is refused by :meth:`check_declaration`, before the run starts.
    """

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: str | None = None,
        required: bool = False,
        show_default: bool = True,
        separator: str | None = None,
        **unknown: Any,
    ) -> None:
        self.name = name
        self.default = default
        self.help = help or ""
        self.required = required
        self.show_default = show_default
        self.separator = separator
        self.attribute = name
        self.type = type if type is not None else self._infer_type(default)
        #: The type was inferred from a config reference's text, not its value: resolve
        #: infers it again from the value (a config's ``False`` stays a bool).
        self._type_from_config = type is None and isinstance(default, ConfigExpression)
        #: Keywords this class does not take, refused by check_declaration (not here: a
        #: class body raising would end the flow file's import with a traceback).
        self.unknown = dict(unknown)

    @staticmethod
    def _infer_type(default: Any) -> Any:
        if default is None or callable(default):
            return str
        if isinstance(default, bool):
            return bool
        if isinstance(default, dict | list):
            return JSONType
        return builtin_type(default)

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        # Parameters reach the task as inherited artifacts named by the attribute.
        return instance._load_artifact(self.attribute)

    def __set__(self, instance: Any, value: Any) -> None:
        raise AttributeError(
            f"parameter '{self.name}' is read-only inside the flow; "
            "store a changed value under another name"
        )

    # -- orchestrator side ----------------------------------------------------------------

    @property
    def type_name(self) -> str:
        """Human name of the type (for help and messages)."""
        if self.type is JSONType:
            return "JSON"
        return getattr(self.type, "__name__", str(self.type))

    def check_declaration(self, flow_name: str) -> None:
        """Reject declarations that can never work (an unknown keyword, a bad type or
        separator, a default of the wrong type)."""
        self._check_keywords(flow_name)
        if self.separator is not None:
            if not isinstance(self.separator, str) or not self.separator:
                problem = "is not a non-empty string"
            elif self.type is not str:
                problem = f"needs type str, not {self.type_name}"
            else:
                problem = ""
            if problem:
                raise ParameterError(
                    f"flow '{flow_name}', parameter '{self.name}': separator="
                    f"{self.separator!r} {problem}. A separator splits a str value into a "
                    "list of strings: give a non-empty string, e.g. separator=',', and leave "
                    "type as str."
                )
        if self.type not in (*_SCALARS, JSONType):
            raise ParameterError(
                f"flow '{flow_name}', parameter '{self.name}': type={self.type!r} is not "
                "supported. Use str, int, float, bool or JSONType."
            )
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ParameterError(
                f"flow '{flow_name}', parameter name {self.name!r} is not usable on the "
                "command line. Use letters, digits, '_' and '-'."
            )
        if self.default is not None and not callable(self.default):
            self.convert(self.default, flow_name, source="default")

    def _check_keywords(self, flow_name: str) -> None:
        if not self.unknown:
            return
        key, value = next(iter(self.unknown.items()))
        known = tuple(p for p in inspect.signature(type(self).__init__).parameters)[1:-1]
        raise ParameterError(
            f"flow '{flow_name}', parameter '{self.name}': {key}={value!r} is not a keyword "
            f"of {type(self).__name__}.{did_you_mean(key, known)} It takes: "
            f"{', '.join(known)}."
        )

    @property
    def environment_variable(self) -> str:
        """The variable that gives the value when the command line does not:
        ``METAFLOW_RUN_<NAME>``, the name upper-cased with ``-`` as ``_`` (Metaflow's)."""
        return ENVIRONMENT_PREFIX + self.name.replace("-", "_").upper()

    def resolve(
        self,
        given: str | None,
        flow_name: str,
        environ: Mapping[str, str] | None = None,
        configs: Any = None,
    ) -> Any:
        """The parameter's value from the command-line text ``given``, else from its
        :attr:`environment_variable` in ``environ`` (default: ``os.environ``; set but empty
        is a value, as in Metaflow), else its default."""
        typed = self
        if self._type_from_config:
            value = self._default_value(flow_name, configs)
            typed = copy.copy(self)
            typed.type = self._infer_type(value) if value is not None else str
            typed._type_from_config = False
        if given is not None:
            return typed.convert(given, flow_name, source="--" + self.name)
        variable = self.environment_variable
        from_environment = (os.environ if environ is None else environ).get(variable)
        if from_environment is not None:
            return typed.convert(
                from_environment, flow_name, source=f"environment variable {variable}"
            )
        default = self._default_value(flow_name, configs)
        if default is None:
            if self.required:
                raise ParameterError(
                    f"flow '{flow_name}': parameter '{self.name}' is required and was not "
                    f"given. Pass --{self.name} VALUE ({self.type_name}) or set "
                    f"{variable}."
                )
            return None
        return typed.convert(default, flow_name, source="default")

    def _default_value(self, flow_name: str, configs: Any) -> Any:
        """The default, called with the parameter's context when it is callable."""
        default = self.default
        if callable(default):
            context = ParameterContext(flow_name, self.name, current_user(), configs)
            try:
                takes_context = bool(inspect.signature(default).parameters)
            except (TypeError, ValueError):
                takes_context = True
            default = default(context) if takes_context else default()
        return default

    def convert(self, value: Any, flow_name: str, *, source: str) -> Any:
        """``value`` converted to the parameter's type (split at ``separator``);
        ParameterError when impossible."""
        try:
            if self.separator and isinstance(value, str):
                return [_convert(piece, self.type) for piece in value.split(self.separator)]
            if self.separator and isinstance(value, list | tuple):
                return [_convert(piece, self.type) for piece in value]
            return _convert(value, self.type)
        except (ValueError, TypeError) as error:
            example = f"--{self.name} {_example(self.type)}"
            if source.startswith("environment variable "):
                example = f"{self.environment_variable}={_example(self.type)}"
            raise ParameterError(
                f"flow '{flow_name}', parameter '{self.name}': {source} value {value!r} is "
                f"not a valid {self.type_name} ({error}). Pass a value of type {self.type_name}, "
                f"e.g. {example}."
            ) from None


def builtin_type(value: Any) -> type:
    """The scalar type of ``value`` (str for anything else)."""
    for candidate in (bool, int, float, str):
        if isinstance(value, candidate):
            return candidate
    return str


def _convert(value: Any, kind: Any) -> Any:
    if kind is JSONType:
        return json.loads(value) if isinstance(value, str) else json.loads(json.dumps(value))
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        # The words click (Metaflow's command line) takes.
        if text in ("true", "1", "yes", "y", "on", "t"):
            return True
        if text in ("false", "0", "no", "n", "off", "f"):
            return False
        raise ValueError("expected true or false")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError("not an integer")
    if kind is int and isinstance(value, str):
        return int(value.strip())
    return kind(value)


def _example(kind: Any) -> str:
    return {int: "3", float: "0.5", bool: "true", str: "text"}.get(kind, "'{\"key\": 1}'")


class IncludeFile(Parameter):
    """A parameter whose value is a local file's content, read by the orchestrator.

    The content (``str`` when ``is_text``, else ``bytes``) is stored as an artifact, so
    tasks running elsewhere see it without the file.
    """

    def __init__(
        self,
        name: str,
        default: Any = None,
        help: str | None = None,
        required: bool = False,
        is_text: bool = True,
        encoding: str = "utf-8",
        show_default: bool = True,
        **unknown: Any,
    ) -> None:
        super().__init__(
            name,
            default=default,
            type=str,
            help=help,
            required=required,
            show_default=show_default,
            **unknown,
        )
        self.is_text = is_text
        self.encoding = encoding

    @property
    def type_name(self) -> str:
        """Shown in help: the value is a path."""
        return "file path"

    def check_declaration(self, flow_name: str) -> None:
        """A default, when given, must be a path (checked for existence at run time)."""
        self._check_keywords(flow_name)
        if (
            self.default is not None
            and not callable(self.default)
            and not isinstance(self.default, str | os.PathLike)
        ):
            raise ParameterError(
                f"flow '{flow_name}', IncludeFile '{self.name}': default={self.default!r} "
                "is not a path. Pass the file's path as a string."
            )

    def convert(self, value: Any, flow_name: str, *, source: str) -> Any:
        """Read the file named by ``value``."""
        path = os.path.expanduser(str(value))
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as error:
            raise ParameterError(
                f"flow '{flow_name}', IncludeFile '{self.name}': {source} file {str(value)!r} "
                f"cannot be read ({error.strerror}). Pass the path of a readable file."
            ) from None
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError:
            raise ParameterError(
                f"flow '{flow_name}', IncludeFile '{self.name}': file {str(value)!r} is not "
                f"{self.encoding} text. Pass is_text=False to include bytes."
            ) from None


def flow_parameters(flow_class: type) -> dict[str, Parameter]:
    """The flow's parameters by attribute name, in definition order (base classes first)."""
    found: dict[str, Parameter] = {}
    for klass in reversed(flow_class.__mro__):
        for attribute, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[attribute] = value
    return found


#: Names of the flow API that are never flow constants (Metaflow's ``_NON_PARAMETERS``).
_NOT_CONSTANTS = frozenset({"cmd", "foreach_stack", "index", "input", "script_name", "name"})


def flow_constants(flow_class: type) -> dict[str, Any]:
    """The flow's class-level constants by name: every public class attribute of the flow
    (and of its bases below ``FlowSpec``) that is a plain value, not a step, method,
    property, class, parameter or config. As in Metaflow, they are stored with the run's
    parameters, inherited by every task (joins included) and read-only in steps."""
    found: dict[str, Any] = {}
    for klass in reversed(flow_class.__mro__):
        if klass is object or klass.__module__ == "batchwright.flowspec":
            continue  # FlowSpec and its base
        for name, value in vars(klass).items():
            if name.startswith("_") or name in _NOT_CONSTANTS:
                continue
            # Descriptors (functions, properties, Parameter, Config), classes and config
            # references (values only the run's configs give) are not.
            if isinstance(value, type | ConfigExpression) or hasattr(type(value), "__get__"):
                found.pop(name, None)
                continue
            found[name] = value
    return found


def resolve_parameters(
    flow_class: type,
    given: Mapping[str, str | None],
    flow_name: str,
    environ: Mapping[str, str] | None = None,
    configs: Any = None,
) -> dict[str, Any]:
    """Every parameter's value (attribute -> value): from the command line (``given``),
    else its ``METAFLOW_RUN_<NAME>`` variable in ``environ`` (default: ``os.environ``),
    else its default (a callable one, or a config expression, gets ``configs``: the run's
    configs by name, see :meth:`batchwright.configs.RunConfigs.namespace`); raises
    ParameterError."""
    return {
        attribute: parameter.resolve(given.get(attribute), flow_name, environ, configs)
        for attribute, parameter in flow_parameters(flow_class).items()
    }
