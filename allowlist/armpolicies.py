"""The policies allowlist adds to azure-core's pipelines, sync and async alike: a client request ID, retries
that respect the run's deadline and give up on what no retry can help, and pacing within ARM's
per-subscription write bucket. Light: azure-core is imported only when a policy is made."""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any

from allowlist.errors import AllowlistError

if TYPE_CHECKING:
    from allowlist.azure import ArmSettings


class WritePacer:
    """ARM's per-subscription write bucket (200 at once, then 10 a second), kept on this side too, so a run
    spends its writes at the rate ARM refills them instead of earning 429s; ARM's own count, from the
    `x-ms-ratelimit-remaining-subscription-writes` header, corrects ours when it is lower."""

    def __init__(self, burst: float = 200.0, per_second: float = 10.0) -> None:
        self.burst, self.per_second = burst, per_second
        self._tokens: dict[str, float] = {}
        self._updated: dict[str, float] = {}
        self._lock = threading.Lock()

    def _take(self, subscription: str) -> float:
        """0 when a write may go now (its token is taken), else how long to wait before asking again."""
        with self._lock:
            now = time.monotonic()
            refilled = (now - self._updated.get(subscription, now)) * self.per_second
            tokens = min(self.burst, self._tokens.get(subscription, self.burst) + refilled)
            self._updated[subscription] = now
            if tokens >= 1:
                self._tokens[subscription] = tokens - 1
                return 0.0
            self._tokens[subscription] = tokens
            return (1 - tokens) / self.per_second

    def acquire(self, subscription: str) -> None:
        while (wait := self._take(subscription)) > 0:
            time.sleep(wait)

    async def acquire_async(self, subscription: str) -> None:
        import asyncio

        while (wait := self._take(subscription)) > 0:
            await asyncio.sleep(wait)

    def observe(self, subscription: str, remaining: str | None) -> None:
        """ARM's count of the writes left (the REMAINING_WRITES header), where an answer carried it."""
        if remaining is None or not remaining.isdigit():
            return
        with self._lock:
            if int(remaining) < self._tokens.get(subscription, self.burst):
                self._tokens[subscription] = float(remaining)
                self._updated[subscription] = time.monotonic()


REMAINING_WRITES = "x-ms-ratelimit-remaining-subscription-writes"


def write_subscription(method: str, url: str) -> str | None:
    """The subscription whose write bucket a request spends: None for reads, and for calls outside one."""
    return None if method.upper() in ("GET", "HEAD") else _subscription_of(url)


def _subscription_of(url: str) -> str | None:
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0].split("/")
    return path[1].lower() if len(path) > 1 and path[0].lower() == "subscriptions" else None


def make_pacing_policy(pacer: WritePacer, asynchronous: bool = False) -> Any:
    from azure.core.pipeline.policies import AsyncHTTPPolicy, HTTPPolicy

    class PacingPolicy(HTTPPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            sub = write_subscription(request.http_request.method, request.http_request.url)
            if sub is not None:
                pacer.acquire(sub)
            response = self.next.send(request)
            if sub is not None:
                pacer.observe(sub, response.http_response.headers.get(REMAINING_WRITES))
            return response

    class AsyncPacingPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
        async def send(self, request: Any) -> Any:
            sub = write_subscription(request.http_request.method, request.http_request.url)
            if sub is not None:
                await pacer.acquire_async(sub)
            response = await self.next.send(request)
            if sub is not None:
                pacer.observe(sub, response.http_response.headers.get(REMAINING_WRITES))
            return response

    return AsyncPacingPolicy() if asynchronous else PacingPolicy()


def new_request_id() -> str:
    """x-ms-client-request-id, one per request (kept across its retries), for support to find it: a random
    UUID. azure-core's RequestIdPolicy makes a uuid1 per request, measured at about 5% of a rule write's CPU."""
    h = f"{random.getrandbits(128):032x}"  # formatted by hand: a third of uuid.UUID's cost, per rule write
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def make_request_id_policy() -> Any:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class ClientRequestIdPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            request.http_request.headers.setdefault("x-ms-client-request-id", new_request_id())

    return ClientRequestIdPolicy()


class RunTimeout(AllowlistError):
    """The run reached --timeout; what was written stays written."""


def make_retry_policy(settings: ArmSettings, asynchronous: bool = False) -> Any:
    """azure-core's retries, with three changes: errors no retry can help (an untrusted certificate, an
    unknown host, a refused connection) fail at once; a PATCH that carries If-Match is retried after a
    dropped connection, since it cannot clobber anything; and no attempt or wait passes the deadline."""
    from azure.core.pipeline.policies import AsyncRetryPolicy, RetryPolicy

    from allowlist.armerrors import unreachable

    class ArmRetryRules:  # before azure-core's sync or async policy in the MRO
        def _is_method_retryable(self, retry_settings: Any, request: Any, response: Any = None) -> bool:
            if request.method.upper() == "PATCH" and "If-Match" in request.headers:
                return True
            return bool(super()._is_method_retryable(retry_settings, request, response=response))  # type: ignore[misc]

        def increment(self, retry_settings: Any, response: Any = None, error: Any = None) -> bool:
            if error is not None and unreachable(error) is not None:
                return False
            return bool(super().increment(retry_settings, response=response, error=error))  # type: ignore[misc]

    class ArmRetryPolicy(ArmRetryRules, RetryPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            check_deadline(settings.deadline)
            return super().send(request)

        def sleep(self, retry_settings: Any, transport: Any, response: Any = None) -> None:
            check_deadline(settings.deadline)
            super().sleep(retry_settings, transport, response=response)
            check_deadline(settings.deadline)

    class AsyncArmRetryPolicy(ArmRetryRules, AsyncRetryPolicy):  # type: ignore[type-arg]
        async def send(self, request: Any) -> Any:
            check_deadline(settings.deadline)
            return await super().send(request)

        async def sleep(self, retry_settings: Any, transport: Any, response: Any = None) -> None:
            check_deadline(settings.deadline)
            await super().sleep(retry_settings, transport, response=response)
            check_deadline(settings.deadline)

    # azure-core also caps each kind of retry at 3 unless told: a 429 storm needs more.
    return (AsyncArmRetryPolicy if asynchronous else ArmRetryPolicy)(
        retry_total=settings.retry_total,
        retry_status=settings.retry_total,
        retry_connect=settings.retry_total,
        retry_read=settings.retry_total,
        retry_backoff_factor=settings.retry_backoff,
    )


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise RunTimeout("the run reached its --timeout; writes already made were kept, run again to finish")
