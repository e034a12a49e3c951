"""The job environment: which variables of the launching process reach a Batch job, and
the ones a job sets for its own step (its temporary directory).

Credentials never travel in a job's environment on real AWS: a job gets them from its job
role. The one exception is the local emulator, whose test credentials are useless
anywhere else: when every endpoint variable points at a loopback address, they travel so
that the container can reach the emulator. Variables naming files of the launching
machine (``AWS_PROFILE``...) mean nothing in a container and are dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

#: Variables that carry credentials; they never reach a job (see :func:`job_environment`).
CREDENTIAL_VARIABLES = frozenset(
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"]
)
#: Variables that point at files on the launching machine; meaningless in a container.
HOST_ONLY_VARIABLES = frozenset(["AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"])
#: The endpoint jobs use when it differs from the launching process's ``AWS_ENDPOINT_URL``.
JOB_ENDPOINT_VARIABLE = "BATCHWRIGHT_JOB_AWS_ENDPOINT_URL"
#: Variables forwarded from the launching process besides the endpoints.
FORWARDED_VARIABLES = frozenset(["AWS_DEFAULT_REGION", "AWS_REGION"])
#: Where a job's step keeps its temporary files (``current.tempdir`` is made inside it),
#: when ``@batch(use_tmpfs=True, tmpfs_tempdir=True)`` puts them on the tmpfs. Named
#: after Metaflow's ``METAFLOW_TEMPDIR``.
TEMPDIR_VARIABLE = "BATCHWRIGHT_TEMPDIR"
#: Prefixes of the variables AWS Batch (``AWS_BATCH_*``), ECS (``ECS_CONTAINER_METADATA_URI``)
#: and batchwright (``AWS_REGION``, the endpoints, ``BATCHWRIGHT_USER``...) set in a job.
RESERVED_VARIABLE_PREFIXES = ("AWS_", "ECS_", "BATCHWRIGHT_")
#: Other variables batchwright sets in a job (the bootstrap, the tmpfs temporary directory).
RESERVED_VARIABLES = frozenset(["PYTHONUNBUFFERED", "PYTHONPATH", "TMPDIR"])


def is_reserved_variable(name: str) -> bool:
    """Whether a job's ``name`` variable is set by AWS Batch, ECS or batchwright, so that a
    step may not set it another way (e.g. from a secret)."""
    return name in RESERVED_VARIABLES or name.startswith(RESERVED_VARIABLE_PREFIXES)


def is_loopback_endpoint(url: str | None) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    if not url:
        return False
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentials_allowed(environment: Mapping[str, str]) -> bool:
    """Whether credentials may travel in a job's environment.

    Only for the local emulator: ``AWS_ENDPOINT_URL`` is set and it, and every other
    ``AWS_ENDPOINT_URL_*`` set, is a loopback address. Real AWS jobs get credentials
    from their job role, never from variables.
    """
    endpoints = {k: v for k, v in environment.items() if k.startswith("AWS_ENDPOINT_URL")}
    return "AWS_ENDPOINT_URL" in endpoints and all(
        is_loopback_endpoint(v) for v in endpoints.values()
    )


def job_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` made safe for a job: credentials removed unless
    :func:`credentials_allowed`; variables naming host files (``AWS_PROFILE``…) removed."""
    keep_credentials = credentials_allowed(environment)
    return {
        k: v
        for k, v in environment.items()
        if k not in HOST_ONLY_VARIABLES and (keep_credentials or k not in CREDENTIAL_VARIABLES)
    }


def forwarded_aws_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The AWS variables of the launching process a job should see: the endpoints
    (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``…), the region, and the credentials
    only when :func:`credentials_allowed` (the local emulator's test credentials).

    When :data:`JOB_ENDPOINT_VARIABLE` is set, jobs get that endpoint instead of the
    launching process's ones: the two may reach AWS by different routes (an emulator
    behind a proxy on this machine, a container network that names the host
    differently).
    """
    picked = {
        k: v
        for k, v in environ.items()
        if k.startswith("AWS_ENDPOINT_URL") or k in FORWARDED_VARIABLES or k in CREDENTIAL_VARIABLES
    }
    job_endpoint = environ.get(JOB_ENDPOINT_VARIABLE)
    if job_endpoint:
        picked = {k: v for k, v in picked.items() if not k.startswith("AWS_ENDPOINT_URL")}
        picked["AWS_ENDPOINT_URL"] = job_endpoint
    return job_environment(picked)


def tempdir_environment(tempdir: str | None) -> dict[str, str]:
    """The variables that send a job's temporary files to ``tempdir`` (the tmpfs path of
    ``BatchOptions.tempdir``): ``TMPDIR``, which Python's :mod:`tempfile` and most tools
    follow, and :data:`TEMPDIR_VARIABLE`; nothing when ``tempdir`` is None."""
    if tempdir is None:
        return {}
    return {"TMPDIR": tempdir, TEMPDIR_VARIABLE: tempdir}
