"""The one place that makes boto3 clients.

boto3 honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` only from botocore
1.31 on; job images often carry an older boto3 (Debian bookworm's is 1.26). Passing the
endpoint explicitly makes every batchwright client reach the same endpoint whatever the
installed version, in the orchestrator and inside job containers alike.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from batchwright.errors import BatchwrightError


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


# --- patience: the orchestrator outlives throttling and short outages -----------------------

#: How long the orchestrator keeps trying while AWS cannot be reached, by default.
DEFAULT_OUTAGE_LIMIT_SECONDS = 600.0
#: Backoff of :class:`Patience`: full jitter, ``random() * min(CAP, BASE * 2**n)`` seconds.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
#: Error codes AWS services answer when they throttle.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)


def is_throttling(error: BaseException) -> bool:
    """Whether ``error`` is an AWS answer saying "slow down"."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in THROTTLING_CODES or status == 429


def is_transient(error: BaseException) -> bool:
    """Whether a retry may succeed: throttling, a 5xx answer, or no answer at all
    (connection refused or reset, timeouts)."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(
        error,
        EndpointConnectionError
        | ConnectionClosedError
        | ReadTimeoutError
        | ConnectTimeoutError
        | BotoConnectionError,
    ):
        return True
    if is_throttling(error):
        return True
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    return False


def describe_error(error: BaseException) -> str:
    """A short account of an AWS failure, without request ids or a traceback."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        detail = response["Error"]
        return f"{detail.get('Code', 'error')}: {detail.get('Message', '')}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


T = TypeVar("T")


@dataclass
class Patience:
    """Retries AWS calls through throttling and outages, for as long as a run can wait.

    botocore already retries each call a few times with backoff; past that, a call that
    failed for a transient reason (:func:`is_transient`) is tried again with full jitter
    (``random() * min(30 s, 1 s * 2**n)``) until AWS has been unreachable for
    :attr:`limit_seconds` in a row. Every wait is reported through :attr:`on_wait`
    ("reconnecting"), the recovery through :attr:`on_recovered`. One instance serves the
    whole orchestrator, so an outage is measured once however many calls it breaks.
    """

    #: Seconds AWS may stay unreachable before the run gives up (its jobs keep running).
    limit_seconds: float = DEFAULT_OUTAGE_LIMIT_SECONDS
    #: Called before each wait with what failed and how long AWS has been unreachable.
    on_wait: Callable[[str, float], None] = field(default=lambda problem, seconds: None)
    #: Called once AWS answers again, with how long it was unreachable.
    on_recovered: Callable[[float], None] = field(default=lambda seconds: None)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    random: Callable[[], float] = random.random
    _since: float | None = None

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)``, retried while its failures are transient.

        Raises:
            AwsUnreachable: AWS stayed unreachable (or kept throttling) past the limit.
            Exception: any failure that is not transient, unchanged.
        """
        attempt = 0
        while True:
            try:
                result = function(*args, **kwargs)
            except Exception as error:
                if not is_transient(error):
                    raise
                now = self.clock()
                if self._since is None:
                    self._since = now
                waited = now - self._since
                if waited >= self.limit_seconds:
                    raise AwsUnreachable(
                        f"AWS did not answer for {waited:.0f} s ({describe_error(error)}), "
                        f"longer than the outage limit of {self.limit_seconds:.0f} s. Jobs "
                        "already submitted keep running; resume the run once AWS answers "
                        "again (it reattaches to them), or raise --outage-limit."
                    ) from error
                delay = self.random() * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
                attempt += 1
                self.on_wait(describe_error(error), waited)
                self.sleep(min(delay, self.limit_seconds - waited))
                continue
            if self._since is not None:
                self.on_recovered(self.clock() - self._since)
                self._since = None
            return result


class AwsUnreachable(BatchwrightError):
    """AWS could not be reached (or kept throttling) for longer than the outage limit."""
