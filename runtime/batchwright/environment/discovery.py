"""Finding the environment a run uses: a name, then the first source that has it.

The name comes from, in order: ``--environment NAME``, the ``BATCHWRIGHT_ENVIRONMENT``
variable, the ``batchwright:defaultEnvironment`` context of the nearest ``cdk.json`` (walking
up from the flow file's directory, then from the working directory). It is the stack name.

When none of them names one, it is looked for (:func:`find_unnamed`), and the first place
that knows decides:

a. the outputs file (as below) when it holds batchwright stacks;
b. the cloud assembly (``--cdk-out``, else the folder the ``output`` key of that
   ``cdk.json`` names, ``cdk.out`` by default, else ``cdk.out`` in the working directory)
   when it holds batchwright stacks;
c. unless only ``cdk.out`` may be read, the account and region: the descriptors the
   construct library publishes under the SSM path ``/batchwright/environments/<stack>``
   (one ``GetParametersByPath``), else the deployed stacks (CloudFormation
   ``DescribeStacks``, every page) with the ``BatchwrightEnvironment`` (or
   ``BatchwrightEnvironmentParameter``) output, which finds environments deployed before
   the parameter had a fixed name.

Exactly one environment there is the one; several are refused with their names and how
to choose one; none anywhere leaves the run without an environment (``None``).

The descriptor is then read from the first source that has it:

1. the JSON written by ``cdk deploy --outputs-file`` (``--outputs-file``, else
   ``BATCHWRIGHT_OUTPUTS_FILE``, else ``cdk-outputs.json`` beside that ``cdk.json`` or in the
   working directory, when it holds the stack);
2. the stack's CloudFormation outputs;
3. the SSM parameter the stack names in its outputs (or NAME itself when it starts with
   ``/``);
4. only when ``allow_static`` (``plan``, ``--run-batch-locally``): the synthesized template
   in the cloud assembly, which needs no deployment and no AWS call.

AWS calls use short timeouts and no retries, so discovery fails fast, with every place
tried listed in the error, when no AWS is reachable. The caller keeps the result for the
run (the flow CLI finds it once and hands it to the scheduler); nothing is cached here, so
two runs in one process never see each other's environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchwright.environment.assembly import stack_template
from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_PATH,
    EnvironmentDescriptor,
    descriptor_parameter_name,
)
from batchwright.environment.sources import (
    environment_stacks,
    from_cloud_assembly,
    from_outputs_file,
    is_placeholder,
    outputs_file_environments,
    render_output,
)
from batchwright.errors import DescriptorError, EnvironmentNotFound, UserInputError

#: Variable naming the environment (stack) when ``--environment`` is not given.
ENVIRONMENT_VARIABLE = "BATCHWRIGHT_ENVIRONMENT"
#: Variable naming the ``cdk deploy --outputs-file`` JSON when ``--outputs-file`` is not given.
OUTPUTS_FILE_VARIABLE = "BATCHWRIGHT_OUTPUTS_FILE"
#: The ``cdk.json`` context key naming the default environment.
DEFAULT_ENVIRONMENT_CONTEXT = "batchwright:defaultEnvironment"
#: The outputs file looked for beside ``cdk.json`` and in the working directory.
OUTPUTS_FILE_NAME = "cdk-outputs.json"
#: The cloud assembly folder when ``cdk.json`` names none in its ``output`` key.
DEFAULT_CLOUD_ASSEMBLY = "cdk.out"
#: Seconds to wait for a connection / an answer during discovery (no retries).
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10
#: How to name an environment, in the words of the run, resume and plan commands.
CHOOSE_WITH_OPTION = "--environment NAME"
#: Stack statuses of stacks on their way out: not offered as an environment.
_LEAVING_STATUSES = frozenset({"DELETE_IN_PROGRESS", "DELETE_COMPLETE", "DELETE_FAILED"})


class UnknownEnvironment(EnvironmentNotFound, UserInputError):
    """The environment named was not found, or several were found and none was named.

    Found before anything ran, so it is bad input (exit code 2) like every other refusal;
    still an :class:`~batchwright.errors.EnvironmentNotFound` for callers that catch that.
    """


@dataclass(frozen=True)
class EnvironmentName:
    """The environment (stack) name a run uses, and where the name came from."""

    name: str
    #: ``--environment``, ``$BATCHWRIGHT_ENVIRONMENT`` or ``cdk.json context (PATH)``; for a
    #: name nothing gave, the place it was found (``named`` is then false).
    origin: str
    #: The nearest ``cdk.json``, if one was found (its directory holds cdk.out and outputs).
    cdk_json: Path | None = None
    #: Whether the name was given (flag, variable, cdk.json) rather than found.
    named: bool = True

    def described(self) -> str:
        """``named by --environment`` or ``the only batchwright stack in ...``."""
        return f"named by {self.origin}" if self.named else self.origin


def find_cdk_json(start: str | Path) -> Path | None:
    """The nearest ``cdk.json`` in ``start`` or one of its parents."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "cdk.json"
        if candidate.is_file():
            return candidate
    return None


def _cdk_json_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _default_from_cdk_json(path: Path) -> str | None:
    context = _cdk_json_document(path).get("context")
    value = context.get(DEFAULT_ENVIRONMENT_CONTEXT) if isinstance(context, dict) else None
    return value if isinstance(value, str) and value else None


def _search_folders(cwd: str | Path, flow_dir: str | Path | None) -> list[Path]:
    folders = [Path(flow_dir)] if flow_dir is not None else []
    folders.append(Path(cwd))
    return folders


def _nearest_cdk_json(cwd: str | Path, flow_dir: str | Path | None) -> Path | None:
    return next(
        (found for f in _search_folders(cwd, flow_dir) if (found := find_cdk_json(f))), None
    )


def resolve_name(
    name: str | None,
    *,
    cwd: str | Path,
    flow_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> EnvironmentName | None:
    """The environment name: ``name`` (the flag), else ``$BATCHWRIGHT_ENVIRONMENT``, else the
    ``batchwright:defaultEnvironment`` context of the nearest ``cdk.json`` above ``flow_dir``
    or ``cwd``; ``None`` when none of them names one."""
    env = os.environ if environ is None else environ
    cdk_json = _nearest_cdk_json(cwd, flow_dir)
    if name:
        return EnvironmentName(name, "--environment", cdk_json)
    from_variable = env.get(ENVIRONMENT_VARIABLE)
    if from_variable:
        return EnvironmentName(from_variable, f"${ENVIRONMENT_VARIABLE}", cdk_json)
    for folder in _search_folders(cwd, flow_dir):
        found = find_cdk_json(folder)
        if found is not None:
            default = _default_from_cdk_json(found)
            if default:
                return EnvironmentName(default, f"cdk.json context ({found})", found)
    return None


def cloud_assemblies(cdk_out: str | Path | None, cdk_json: Path | None, cwd: Path) -> list[Path]:
    """Where the synthesized app may be: ``cdk_out`` when given; else the folder the
    ``output`` key of ``cdk_json`` names (``cdk.out`` by default) beside it, then
    ``cdk.out`` in ``cwd``."""
    if cdk_out is not None:
        return [Path(cdk_out)]
    folders: list[Path] = []
    if cdk_json is not None:
        output = _cdk_json_document(cdk_json).get("output")
        relative = output if isinstance(output, str) and output else DEFAULT_CLOUD_ASSEMBLY
        folders.append(cdk_json.parent / relative)
    folders.append(cwd / DEFAULT_CLOUD_ASSEMBLY)
    unique: dict[Path, Path] = {}
    for folder in folders:
        unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


def discovery_config() -> Any:
    """The botocore config of discovery clients: short timeouts, one attempt."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


def _client(service: str, session: Any) -> Any:
    # Discovery's short timeouts instead of the run's patient retries.
    from batchwright import aws

    return aws.client(service, session=session, config=discovery_config())


def _aws_problem(error: Exception) -> str:
    """A short reason for an AWS failure (no traceback, no request ids)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        detail = response.get("Error", {})
        return f"{detail.get('Code', 'error')}: {detail.get('Message', error)}"
    return f"{type(error).__name__}: {error}"


class _Attempts:
    """What discovery tried, for the error message."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def add(self, place: str, outcome: str) -> None:
        self.tried.append(f"{place}: {outcome}")


def _outputs_files(
    outputs_file: str | Path | None,
    cdk_json: Path | None,
    cwd: Path,
    environ: Mapping[str, str],
) -> tuple[list[Path], bool]:
    """Candidate outputs files, and whether the first was named explicitly."""
    explicit = outputs_file or environ.get(OUTPUTS_FILE_VARIABLE)
    if explicit:
        return [Path(explicit)], True
    candidates = []
    if cdk_json is not None:
        candidates.append(cdk_json.parent / OUTPUTS_FILE_NAME)
    candidates.append(cwd / OUTPUTS_FILE_NAME)
    unique: list[Path] = []
    for c in candidates:
        if c.resolve() not in [u.resolve() for u in unique]:
            unique.append(c)
    return unique, False


def _missing_outputs_file(file: Path, stack: str | None) -> UnknownEnvironment:
    """The refusal of an outputs file that was named but does not exist."""
    deploy = f"cdk deploy {stack + ' ' if stack else ''}--outputs-file {file}"
    return UnknownEnvironment(
        f"outputs file {file} (given by --outputs-file or ${OUTPUTS_FILE_VARIABLE}) "
        f"does not exist. Deploy with '{deploy}', or drop the option to look the stack up "
        "in CloudFormation."
    )


def _from_outputs(
    stack: str, files: Sequence[Path], explicit: bool, attempts: _Attempts
) -> tuple[Discovery | None, str | None]:
    """The descriptor from the first outputs file holding the stack; else the SSM parameter
    name an outputs file gives (a stack whose descriptor output was left out)."""
    parameter: str | None = None
    for file in files:
        if not file.is_file():
            if explicit:
                raise _missing_outputs_file(file, stack)
            attempts.add(f"outputs file {file}", "does not exist")
            continue
        try:
            found = from_outputs_file(file, stack)
            return Discovery(found, _file_outputs(file, stack), stack), None
        except EnvironmentNotFound as error:
            if explicit:
                raise UnknownEnvironment(str(error)) from error
            attempts.add(f"outputs file {file}", f"no descriptor of stack {stack!r}")
        try:
            outputs = json.loads(file.read_text()).get(stack) or {}
            candidate = outputs.get(DESCRIPTOR_PARAMETER_OUTPUT_KEY)
            parameter = parameter or (candidate if isinstance(candidate, str) else None)
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
    return None, parameter


def _file_outputs(file: Path, stack: str) -> dict[str, str]:
    try:
        outputs = json.loads(file.read_text()).get(stack) or {}
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return {k: v for k, v in outputs.items() if isinstance(v, str)}


def _template_outputs(cdk_out: Path, stack: str) -> dict[str, str]:
    """The stack's outputs as the static reader renders them (placeholders for tokens, the
    defaults of template parameters such as ``DefaultImage`` for references to them)."""
    try:
        template = stack_template(cdk_out, stack)
        rendered = {key: render_output(template, key) for key in template.get("Outputs") or {}}
    except (EnvironmentNotFound, OSError, ValueError, AttributeError):
        return {}  # outputs besides the descriptor are a courtesy, not a requirement
    return {k: v for k, v in rendered.items() if isinstance(v, str)}


def _has_credentials(session: Any) -> bool:
    import boto3

    try:
        return (session or boto3.Session()).get_credentials() is not None
    except Exception:  # a broken profile is "no credentials" for discovery's purposes
        return False


def _outputs_of(stack: Mapping[str, Any]) -> dict[str, str]:
    """The outputs of one ``DescribeStacks`` stack, by key."""
    return {
        o["OutputKey"]: o.get("OutputValue", "")
        for o in stack.get("Outputs") or []
        if "OutputKey" in o
    }


def _from_stack_outputs(
    stack: str,
    outputs: Mapping[str, str],
    parameter: str | None,
    *,
    session: Any,
    ssm: Any,
    attempts: _Attempts,
) -> Discovery | None:
    """The descriptor from a deployed stack's outputs, else from the SSM parameter they
    (or an outputs file, ``parameter``) name, else from the stack's parameter under
    :data:`DESCRIPTOR_PARAMETER_PATH`."""
    from botocore.exceptions import BotoCoreError, ClientError

    text = outputs.get(DESCRIPTOR_OUTPUT_KEY)
    if text is not None:
        found = EnvironmentDescriptor.from_json(
            text, source=f"CloudFormation stack {stack} (output {DESCRIPTOR_OUTPUT_KEY})"
        )
        return Discovery(found, dict(outputs), stack)
    # Else the parameter every environment publishes under the SSM path: found without
    # CloudFormation (no such stack, or no right to describe it).
    parameter = (
        outputs.get(DESCRIPTOR_PARAMETER_OUTPUT_KEY)
        or parameter
        or descriptor_parameter_name(stack)
    )
    try:
        client = ssm or _client("ssm", session)
        value = client.get_parameter(Name=parameter)["Parameter"].get("Value", "")
        found = EnvironmentDescriptor.from_json(value, source=f"SSM parameter {parameter}")
        return Discovery(found, {}, stack)
    except (BotoCoreError, ClientError) as error:
        attempts.add(f"SSM parameter {parameter}", _aws_problem(error))
    return None


def _from_aws(
    stack: str,
    parameter: str | None,
    *,
    session: Any,
    cloudformation: Any,
    ssm: Any,
    attempts: _Attempts,
) -> Discovery | None:
    from botocore.exceptions import BotoCoreError, ClientError

    if cloudformation is None and ssm is None and not _has_credentials(session):
        attempts.add("CloudFormation and SSM", "skipped, no AWS credentials found")
        return None
    outputs: dict[str, str] = {}
    if stack.startswith("/"):
        parameter = stack  # NAME is the parameter itself
    else:
        try:
            cfn = cloudformation or _client("cloudformation", session)
            stacks = cfn.describe_stacks(StackName=stack).get("Stacks") or []
            outputs = _outputs_of(stacks[0]) if stacks else {}
            if DESCRIPTOR_OUTPUT_KEY not in outputs:
                attempts.add(
                    f"CloudFormation stack {stack}", f"has no output {DESCRIPTOR_OUTPUT_KEY!r}"
                )
        except (BotoCoreError, ClientError) as error:
            attempts.add(f"CloudFormation stack {stack}", _aws_problem(error))
    return _from_stack_outputs(
        stack, outputs, parameter, session=session, ssm=ssm, attempts=attempts
    )


@dataclass(frozen=True)
class Discovery:
    """A found environment and the stack outputs of the source it came from (empty for
    the SSM parameter), e.g. the ``BatchwrightMetaflowProfile`` output."""

    descriptor: EnvironmentDescriptor
    outputs: Mapping[str, str]
    #: The stack name (or SSM parameter name) the environment was found by: what
    #: ``--environment`` takes to find it again.
    name: str = ""
    #: Where that name came from (:meth:`EnvironmentName.described`).
    origin: str = ""


# --- an environment nothing names -------------------------------------------------------------


@dataclass(frozen=True)
class NameSearch:
    """The outcome of looking for an environment nothing named (:func:`find_unnamed`)."""

    #: The one environment found, if any.
    found: EnvironmentName | None
    #: The places looked at and what each held, for messages when none was found.
    looked: tuple[str, ...]
    #: A stack the account listing already described (its outputs), to read it from.
    outputs: Mapping[str, str] | None = None


def _several(names: Iterable[str], where: str, choose_with: str) -> UnknownEnvironment:
    listed = sorted(names)
    shown = ", ".join(repr(n) for n in listed)
    example = choose_with.replace("NAME", listed[0]) if "NAME" in choose_with else choose_with
    return UnknownEnvironment(
        f"several batchwright environments were found and none is named: {where} holds "
        f"{shown}. Choose one with {choose_with} (e.g. {example}), set "
        f'${ENVIRONMENT_VARIABLE}=NAME, or add "{DEFAULT_ENVIRONMENT_CONTEXT}": "NAME" to '
        "the context of cdk.json."
    )


def _account_environments(cloudformation: Any) -> dict[str, dict[str, str]]:
    """The deployed stacks of the client's account and region that publish the descriptor
    (or its parameter's name), by stack name, with their outputs; every page is read."""
    keys = (DESCRIPTOR_OUTPUT_KEY, DESCRIPTOR_PARAMETER_OUTPUT_KEY)
    found: dict[str, dict[str, str]] = {}
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page.get("Stacks") or []:
            if stack.get("StackStatus") in _LEAVING_STATUSES:
                continue
            outputs = _outputs_of(stack)
            if any(key in outputs for key in keys):
                found[str(stack["StackName"])] = outputs
    return found


def _listed_environments(ssm: Any) -> list[str]:
    """The stack names of the environments published under :data:`DESCRIPTOR_PARAMETER_PATH`
    in the client's account and region (GetParametersByPath, every page)."""
    prefix = DESCRIPTOR_PARAMETER_PATH + "/"
    names: list[str] = []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=DESCRIPTOR_PARAMETER_PATH
    ):
        for parameter in page.get("Parameters") or []:
            name = str(parameter["Name"])
            if name.startswith(prefix):
                names.append(name[len(prefix) :])
    return names


def _look_in_account(
    *, session: Any, cloudformation: Any, ssm: Any, choose_with: str, looked: list[str]
) -> NameSearch | None:
    """The account-and-region step of :func:`find_unnamed`: the descriptors published under
    the SSM path first (one call), then, for stacks deployed before the construct library
    named its parameter, the deployed stacks with the descriptor output."""
    from botocore.exceptions import BotoCoreError, ClientError

    if cloudformation is None and ssm is None and not _has_credentials(session):
        looked.append("the deployed environments: skipped, no AWS credentials found")
        return None
    try:
        client = ssm or _client("ssm", session)
        listed = f"SSM in {_region(client)} (parameters under {DESCRIPTOR_PARAMETER_PATH})"
        names = _listed_environments(client)
    except BotoCoreError as error:  # no answer at all: CloudFormation would not answer either
        looked.append(f"the account (SSM, CloudFormation): {_aws_problem(error)}")
        return None
    except ClientError as error:  # e.g. not allowed to list: the stacks may still tell
        looked.append(f"SSM parameters under {DESCRIPTOR_PARAMETER_PATH}: {_aws_problem(error)}")
        names = []
    else:
        if len(names) > 1:
            raise _several(names, listed, choose_with)
        if names:
            origin = f"the only batchwright environment listed in {listed}"
            return NameSearch(EnvironmentName(names[0], origin, None, named=False), tuple(looked))
        looked.append(f"{listed}: none")
    try:
        cfn = cloudformation or _client("cloudformation", session)
        where = f"CloudFormation in {_region(cfn)}"
        stacks = _account_environments(cfn)
    except (BotoCoreError, ClientError) as error:
        looked.append(f"the deployed stacks (CloudFormation): {_aws_problem(error)}")
        return None
    if len(stacks) > 1:
        raise _several(stacks, f"{where} (the deployed stacks of this account)", choose_with)
    if not stacks:
        looked.append(f"{where}: no stack with the {DESCRIPTOR_OUTPUT_KEY!r} output")
        return None
    ((name, outputs),) = stacks.items()
    origin = f"the only batchwright environment deployed in {where}"
    return NameSearch(EnvironmentName(name, origin, None, named=False), tuple(looked), outputs)


def _region(client: Any) -> str:
    return getattr(client.meta, "region_name", None) or "the default region"


def find_unnamed(
    *,
    cwd: str | Path,
    flow_dir: str | Path | None = None,
    outputs_file: str | Path | None = None,
    cdk_out: str | Path | None = None,
    session: Any = None,
    cloudformation: Any = None,
    ssm: Any = None,
    deployed: bool = True,
    environ: Mapping[str, str] | None = None,
    choose_with: str = CHOOSE_WITH_OPTION,
) -> NameSearch:
    """Looks for the environment when nothing names one (see the module docstring for the
    order): the outputs file, the cloud assembly, then (``deployed``) the account.

    Raises:
        UnknownEnvironment: a place holds several environments (the message lists them and
            says how to choose one, with ``choose_with``), or the outputs file given does
            not exist.
    """
    env = os.environ if environ is None else environ
    here = Path(cwd)
    cdk_json = _nearest_cdk_json(here, flow_dir)
    looked: list[str] = []
    if deployed:
        files, explicit = _outputs_files(outputs_file, cdk_json, here, env)
        for file in files:
            if not file.is_file():
                if explicit:
                    raise _missing_outputs_file(file, None)
                continue
            names = outputs_file_environments(file)
            if len(names) > 1:
                raise _several(names, f"outputs file {file}", choose_with)
            if names:
                origin = f"the only batchwright environment in outputs file {file}"
                return NameSearch(EnvironmentName(names[0], origin, cdk_json, named=False), ())
            looked.append(f"outputs file {file}: no batchwright stack")
    for assembly in cloud_assemblies(cdk_out, cdk_json, here):
        try:
            names = environment_stacks(assembly)
        except EnvironmentNotFound:
            looked.append(f"cloud assembly {assembly}: none (no manifest.json)")
            continue
        if len(names) > 1:
            raise _several(names, f"cloud assembly {assembly}", choose_with)
        if names:
            origin = f"the only batchwright stack in cloud assembly {assembly}"
            return NameSearch(EnvironmentName(names[0], origin, cdk_json, named=False), ())
        looked.append(f"cloud assembly {assembly}: no batchwright stack")
    if deployed:
        found = _look_in_account(
            session=session,
            cloudformation=cloudformation,
            ssm=ssm,
            choose_with=choose_with,
            looked=looked,
        )
        if found is not None:
            return found
    return NameSearch(None, tuple(looked))


# --- finding it ---------------------------------------------------------------------------------


def find_environment(name: str | None, **options: Any) -> EnvironmentDescriptor | None:
    """The descriptor of the environment a run uses, or ``None`` when nothing names one and
    none is found; :func:`discover` without the stack outputs (same arguments)."""
    found = discover(name, **options)
    return found.descriptor if found is not None else None


def discover(name: str | None, **options: Any) -> Discovery | None:
    """The environment a run uses and the stack outputs of its source, or ``None`` when
    nothing names one and none is found; :func:`search` without what was looked at."""
    return search(name, **options).found


@dataclass(frozen=True)
class Search:
    """What :func:`search` found, and where it looked when nothing named an environment
    (for a message that says why there is none)."""

    found: Discovery | None
    looked: tuple[str, ...] = ()


def search(
    name: str | None,
    *,
    cwd: str | Path,
    flow_dir: str | Path | None = None,
    outputs_file: str | Path | None = None,
    cdk_out: str | Path | None = None,
    session: Any = None,
    cloudformation: Any = None,
    ssm: Any = None,
    allow_static: bool = True,
    deployed: bool = True,
    environ: Mapping[str, str] | None = None,
    choose_with: str = CHOOSE_WITH_OPTION,
) -> Search:
    """The environment a run uses and the stack outputs of its source.

    Args:
        name: ``--environment`` (else the variable, else ``cdk.json``; see
            :func:`resolve_name`; else the one :func:`find_unnamed` finds).
        cwd: the working directory; ``flow_dir``: the flow file's directory (searched
            first for ``cdk.json``).
        outputs_file: ``--outputs-file``; else ``$BATCHWRIGHT_OUTPUTS_FILE``, else
            ``cdk-outputs.json`` beside ``cdk.json`` or in ``cwd``.
        cdk_out: the cloud assembly (``--cdk-out``; default: see :func:`cloud_assemblies`).
        session, cloudformation, ssm: a boto3 session or ready clients (tests).
        allow_static: fall back to the cloud assembly (``plan``, ``--run-batch-locally``:
            before anything is deployed).
        deployed: look at deployed sources (outputs file, CloudFormation, SSM); ``False``
            reads the cloud assembly only and makes no AWS call.
        choose_with: how the command names an environment, for the message that lists
            several.

    Returns:
        The discovery, its descriptor's ``source`` saying where it was read from; ``found``
        is ``None`` when nothing names an environment and none was found (``looked`` says
        where it was looked for).

    Raises:
        UnknownEnvironment: a name was given (or found) but no source has it, or several
            environments were found and none was named; the message lists every place
            tried and how to fix it.
        DescriptorError: a source has the environment, but its descriptor is malformed.
    """
    env = os.environ if environ is None else environ
    here = Path(cwd)
    resolved = resolve_name(name, cwd=cwd, flow_dir=flow_dir, environ=env)
    attempts = _Attempts()
    if resolved is None:
        unnamed = find_unnamed(
            cwd=cwd,
            flow_dir=flow_dir,
            outputs_file=outputs_file,
            cdk_out=cdk_out,
            session=session,
            cloudformation=cloudformation,
            ssm=ssm,
            deployed=deployed,
            environ=env,
            choose_with=choose_with,
        )
        if unnamed.found is None:
            return Search(None, unnamed.looked)
        resolved = unnamed.found
        if unnamed.outputs is not None:  # the account listing described it already
            found = _from_stack_outputs(
                resolved.name, unnamed.outputs, None, session=session, ssm=ssm, attempts=attempts
            )
            if found is not None:
                return Search(_named(found, resolved))
    stack = resolved.name
    if deployed:
        files, explicit = _outputs_files(outputs_file, resolved.cdk_json, here, env)
        found, parameter = _from_outputs(stack, files, explicit, attempts)
        if found is not None:
            return Search(_named(found, resolved))
        found = _from_aws(
            stack,
            parameter,
            session=session,
            cloudformation=cloudformation,
            ssm=ssm,
            attempts=attempts,
        )
        if found is not None:
            return Search(_named(found, resolved))
    if allow_static or not deployed:
        for assembly in cloud_assemblies(cdk_out, resolved.cdk_json, here):
            try:
                static = from_cloud_assembly(stack, assembly)
                return Search(
                    _named(Discovery(static, _template_outputs(assembly, stack)), resolved)
                )
            except EnvironmentNotFound as error:
                attempts.add(f"cloud assembly {assembly}", str(error).split(". ")[0])
            except DescriptorError:
                raise
    raise UnknownEnvironment(
        f"environment {stack!r} ({resolved.described()}) was not found. Tried: "
        + "; ".join(attempts.tried)
        + ". Deploy it with 'cdk deploy "
        + stack
        + " --outputs-file cdk-outputs.json' (or 'batchwright localaws deploy' for the local "
        "AWS), check the AWS region and credentials, or pass --environment with the name of a "
        "stack built with batchwright_cdk."
        + ("" if allow_static or not deployed else " 'plan' can also read cdk.out before deploy.")
    )


def _named(found: Discovery, resolved: EnvironmentName) -> Discovery:
    return Discovery(found.descriptor, found.outputs, resolved.name, resolved.described())


def datastore_roots(
    explicit: str | None,
    *,
    cwd: str | Path,
    flow_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Where a flow's runs may be kept, in the order readers (``logs``, the client) look:
    the root given, else ``$BATCHWRIGHT_DATASTORE_ROOT``; else the datastore of the
    environment discovery finds, as ``run`` finds it (where runs with ``@batch`` steps
    keep theirs), then the local folder ``.batchwright`` under ``cwd`` (runs without
    ``@batch`` steps)."""
    from batchwright.datastore import DEFAULT_ROOT, ROOT_VARIABLE

    env = os.environ if environ is None else environ
    if explicit:
        return [explicit]
    if env.get(ROOT_VARIABLE):
        return [env[ROOT_VARIABLE]]
    roots: list[str] = []
    try:
        found = find_environment(None, cwd=cwd, flow_dir=flow_dir, allow_static=False, environ=env)
    except (EnvironmentNotFound, DescriptorError):
        found = None
    if found is not None and not is_placeholder(found.bucket):
        roots.append(found.datastore_root)
    roots.append(str(Path(cwd, DEFAULT_ROOT).resolve()))
    return roots
