"""Finding the environment a run uses: a name, then the first source that has it.

The name comes from, in order: ``--environment NAME``, the ``BATCHWRIGHT_ENVIRONMENT``
variable, the ``batchwright:defaultEnvironment`` context of the nearest ``cdk.json`` (walking
up from the flow file's directory, then from the working directory). It is the stack name.

The descriptor is then read from the first source that has it:

1. the JSON written by ``cdk deploy --outputs-file`` (``--outputs-file``, else
   ``BATCHWRIGHT_OUTPUTS_FILE``, else ``cdk-outputs.json`` beside that ``cdk.json`` or in the
   working directory, when it holds the stack);
2. the stack's CloudFormation outputs;
3. the SSM parameter the stack names in its outputs (or NAME itself when it starts with
   ``/``);
4. only when ``allow_static`` (``plan``): the synthesized template in ``cdk.out`` beside
   ``cdk.json``, which needs no deployment and no AWS call.

AWS calls use short timeouts and no retries, so discovery fails fast, with every place
tried listed in the error, when no AWS is reachable. The caller keeps the result for the
run (the flow CLI finds it once and hands it to the scheduler); nothing is cached here, so
two runs in one process never see each other's environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchwright.environment.assembly import stack_template
from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    EnvironmentDescriptor,
)
from batchwright.environment.sources import (
    from_cloud_assembly,
    from_outputs_file,
    is_placeholder,
    render_intrinsics,
)
from batchwright.errors import DescriptorError, EnvironmentNotFound

#: Variable naming the environment (stack) when ``--environment`` is not given.
ENVIRONMENT_VARIABLE = "BATCHWRIGHT_ENVIRONMENT"
#: Variable naming the ``cdk deploy --outputs-file`` JSON when ``--outputs-file`` is not given.
OUTPUTS_FILE_VARIABLE = "BATCHWRIGHT_OUTPUTS_FILE"
#: The ``cdk.json`` context key naming the default environment.
DEFAULT_ENVIRONMENT_CONTEXT = "batchwright:defaultEnvironment"
#: The outputs file looked for beside ``cdk.json`` and in the working directory.
OUTPUTS_FILE_NAME = "cdk-outputs.json"
#: Seconds to wait for a connection / an answer during discovery (no retries).
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class EnvironmentName:
    """The environment (stack) name a run uses, and where the name came from."""

    name: str
    #: ``--environment``, ``$BATCHWRIGHT_ENVIRONMENT`` or ``cdk.json context (PATH)``.
    origin: str
    #: The nearest ``cdk.json``, if one was found (its directory holds cdk.out and outputs).
    cdk_json: Path | None = None


def find_cdk_json(start: str | Path) -> Path | None:
    """The nearest ``cdk.json`` in ``start`` or one of its parents."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "cdk.json"
        if candidate.is_file():
            return candidate
    return None


def _default_from_cdk_json(path: Path) -> str | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    context = document.get("context") if isinstance(document, dict) else None
    value = context.get(DEFAULT_ENVIRONMENT_CONTEXT) if isinstance(context, dict) else None
    return value if isinstance(value, str) and value else None


def _search_folders(cwd: str | Path, flow_dir: str | Path | None) -> list[Path]:
    folders = [Path(flow_dir)] if flow_dir is not None else []
    folders.append(Path(cwd))
    return folders


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
    cdk_json = next(
        (found for f in _search_folders(cwd, flow_dir) if (found := find_cdk_json(f))), None
    )
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


def _from_outputs(
    stack: str, files: Sequence[Path], explicit: bool, attempts: _Attempts
) -> tuple[Discovery | None, str | None]:
    """The descriptor from the first outputs file holding the stack; else the SSM parameter
    name an outputs file gives (a stack whose descriptor output was left out)."""
    parameter: str | None = None
    for file in files:
        if not file.is_file():
            if explicit:
                raise EnvironmentNotFound(
                    f"outputs file {file} (given by --outputs-file or ${OUTPUTS_FILE_VARIABLE}) "
                    f"does not exist. Deploy with 'cdk deploy {stack} --outputs-file {file}', "
                    "or drop the option to look the stack up in CloudFormation."
                )
            attempts.add(f"outputs file {file}", "does not exist")
            continue
        try:
            found = from_outputs_file(file, stack)
            return Discovery(found, _file_outputs(file, stack)), None
        except EnvironmentNotFound:
            if explicit:
                raise
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
    """The stack's outputs as the static reader renders them (placeholders for tokens)."""
    try:
        template = stack_template(cdk_out, stack)
        rendered = {
            key: render_intrinsics(output.get("Value"))
            for key, output in (template.get("Outputs") or {}).items()
        }
    except (EnvironmentNotFound, OSError, ValueError, AttributeError):
        return {}  # outputs besides the descriptor are a courtesy, not a requirement
    return {k: v for k, v in rendered.items() if isinstance(v, str)}


def _has_credentials(session: Any) -> bool:
    import boto3

    try:
        return (session or boto3.Session()).get_credentials() is not None
    except Exception:  # a broken profile is "no credentials" for discovery's purposes
        return False


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
    if stack.startswith("/"):
        parameter = stack  # NAME is the parameter itself
    else:
        try:
            cfn = cloudformation or _client("cloudformation", session)
            stacks = cfn.describe_stacks(StackName=stack).get("Stacks") or []
            outputs = {
                o["OutputKey"]: o.get("OutputValue", "")
                for o in (stacks[0].get("Outputs") or [] if stacks else [])
                if "OutputKey" in o
            }
            text = outputs.get(DESCRIPTOR_OUTPUT_KEY)
            if text is not None:
                found = EnvironmentDescriptor.from_json(
                    text,
                    source=f"CloudFormation stack {stack} (output {DESCRIPTOR_OUTPUT_KEY})",
                )
                return Discovery(found, outputs)
            attempts.add(
                f"CloudFormation stack {stack}", f"has no output {DESCRIPTOR_OUTPUT_KEY!r}"
            )
            parameter = outputs.get(DESCRIPTOR_PARAMETER_OUTPUT_KEY) or parameter
        except (BotoCoreError, ClientError) as error:
            attempts.add(f"CloudFormation stack {stack}", _aws_problem(error))
    if parameter is None:
        attempts.add("SSM parameter", "name unknown (no stack output names it)")
        return None
    try:
        client = ssm or _client("ssm", session)
        value = client.get_parameter(Name=parameter)["Parameter"].get("Value", "")
        found = EnvironmentDescriptor.from_json(value, source=f"SSM parameter {parameter}")
        return Discovery(found, {})
    except (BotoCoreError, ClientError) as error:
        attempts.add(f"SSM parameter {parameter}", _aws_problem(error))
    return None


@dataclass(frozen=True)
class Discovery:
    """A found environment and the stack outputs of the source it came from (empty for
    the SSM parameter), e.g. the ``BatchwrightMetaflowProfile`` output."""

    descriptor: EnvironmentDescriptor
    outputs: Mapping[str, str]


def find_environment(name: str | None, **options: Any) -> EnvironmentDescriptor | None:
    """The descriptor of the environment a run uses, or ``None`` when nothing names one;
    :func:`discover` without the stack outputs (same arguments)."""
    found = discover(name, **options)
    return found.descriptor if found is not None else None


def discover(
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
) -> Discovery | None:
    """The environment a run uses and the stack outputs of its source, or ``None`` when
    nothing names one.

    Args:
        name: ``--environment`` (else the variable, else ``cdk.json``; see
            :func:`resolve_name`).
        cwd: the working directory; ``flow_dir``: the flow file's directory (searched
            first for ``cdk.json``).
        outputs_file: ``--outputs-file``; else ``$BATCHWRIGHT_OUTPUTS_FILE``, else
            ``cdk-outputs.json`` beside ``cdk.json`` or in ``cwd``.
        cdk_out: the cloud assembly for static reading (default ``cdk.out`` beside
            ``cdk.json``, else in ``cwd``).
        session, cloudformation, ssm: a boto3 session or ready clients (tests).
        allow_static: fall back to ``cdk.out`` (``plan``: before anything is deployed).
        deployed: look at deployed sources (outputs file, CloudFormation, SSM); ``False``
            reads ``cdk.out`` only and makes no AWS call.

    Returns:
        The descriptor, its ``source`` saying where it was read from; ``None`` when no
        name was given and neither the variable nor a ``cdk.json`` names one.

    Raises:
        EnvironmentNotFound: a name was given but no source has it; the message lists every
            place tried and how to fix it.
        DescriptorError: a source has the environment, but its descriptor is malformed.
    """
    env = os.environ if environ is None else environ
    resolved = resolve_name(name, cwd=cwd, flow_dir=flow_dir, environ=env)
    if resolved is None:
        return None
    stack = resolved.name
    attempts = _Attempts()
    here = Path(cwd)
    parameter: str | None = None
    if deployed:
        files, explicit = _outputs_files(outputs_file, resolved.cdk_json, here, env)
        found, parameter = _from_outputs(stack, files, explicit, attempts)
        if found is not None:
            return found
        found = _from_aws(
            stack,
            parameter,
            session=session,
            cloudformation=cloudformation,
            ssm=ssm,
            attempts=attempts,
        )
        if found is not None:
            return found
    if allow_static or not deployed:
        if cdk_out is not None:
            assemblies = [Path(cdk_out)]
        else:
            base = [resolved.cdk_json.parent] if resolved.cdk_json else []
            assemblies = [b / "cdk.out" for b in (*base, here)]
        for assembly in dict.fromkeys(a.resolve() for a in assemblies):
            try:
                static = from_cloud_assembly(stack, assembly)
                return Discovery(static, _template_outputs(assembly, stack))
            except EnvironmentNotFound as error:
                attempts.add(f"cloud assembly {assembly}", str(error).split(". ")[0])
            except DescriptorError:
                raise
    raise EnvironmentNotFound(
        f"environment {stack!r} (named by {resolved.origin}) was not found. Tried: "
        + "; ".join(attempts.tried)
        + ". Deploy it with 'cdk deploy "
        + stack
        + " --outputs-file cdk-outputs.json' (or 'batchwright localaws deploy' for the local "
        "AWS), check the AWS region and credentials, or pass --environment with the name of a "
        "stack built with batchwright_cdk."
        + ("" if allow_static or not deployed else " 'plan' can also read cdk.out before deploy.")
    )


def datastore_roots(
    explicit: str | None,
    *,
    cwd: str | Path,
    flow_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Where a flow's runs may be kept, in the order readers (``logs``, the client) look:
    the root given, else ``$BATCHWRIGHT_DATASTORE_ROOT``; else the datastore of the
    environment discovery finds (where runs with ``@batch`` steps keep theirs), then the
    local folder ``.batchwright`` under ``cwd`` (runs without ``@batch`` steps)."""
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
