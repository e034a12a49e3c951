"""The one place that makes boto3 clients.

boto3 honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` only from botocore
1.31 on; job images often carry an older boto3 (Debian bookworm's is 1.26). Passing the
endpoint explicitly makes every batchwright client reach the same endpoint whatever the
installed version, in the orchestrator and inside job containers alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def endpoint_for(service: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint override for ``service`` from the standard variables, if any."""
    env = os.environ if environ is None else environ
    specific = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return env.get(specific) or env.get("AWS_ENDPOINT_URL") or None


def client(
    service: str, *, region: str | None = None, session: Any = None, config: Any = None
) -> Any:
    """A boto3 client for ``service`` that honours the endpoint variables.

    ``config`` (a botocore ``Config``) defaults to standard retry mode: exponential
    backoff with jitter on throttling and 5xx, up to 8 attempts.
    """
    import boto3
    from botocore.config import Config

    maker = session or boto3
    kwargs: dict[str, Any] = {
        "config": config or Config(retries={"total_max_attempts": 8, "mode": "standard"}),
    }
    endpoint = endpoint_for(service)
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if region:
        kwargs["region_name"] = region
    return maker.client(service, **kwargs)
