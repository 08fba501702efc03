"""Injected trouble: latency, ARM-style throttling, 5xx, 403 for a scope, dropped connections.

Random faults are decided by hashing (seed, method, path, how many times that request was seen), so
a run with the same seed and the same requests meets the same faults whatever the thread order.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass, field, replace

from allowlist.emulator.http import ArmError


class FaultSpecError(ValueError):
    """A --faults spec that cannot be understood."""


@dataclass(frozen=True)
class Bucket:
    burst: int
    per_second: float


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answered 500/503
    drop_rate: float = 0.0  # share of requests whose connection is closed without an answer
    lro_failure_rate: float = 0.0  # share of long-running writes that end Failed, changing nothing
    throttle_rate: float = 0.0  # share of requests answered 429 at random, besides the token buckets
    retry_after: int = 1  # the Retry-After those random 429s carry, in seconds
    throttle: bool = True  # ARM throttles always; switch off to measure without it
    reads: Bucket = Bucket(250, 25.0)  # per subscription, as ARM documents
    writes: Bucket = Bucket(200, 10.0)
    # scopes (ID prefixes) answered 403 AuthorizationFailed; /subscriptions/S/providers/NS covers NS in S's groups
    forbid: tuple[str, ...] = ()
    seed: int = 0

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> FaultConfig:
        """Parse `latency=20,error-rate=0.05,drop-rate=0.01,throttle=off,reads=250/25,forbid=/subscriptions/x`."""
        config = cls(seed=seed)
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise FaultSpecError(f"fault '{item}' needs the form key=value")
            try:
                config = _apply(config, key.strip().lower(), value.strip())
            except ValueError as exc:
                raise FaultSpecError(f"fault '{item}': {exc}") from exc
        return config


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("a rate is a number from 0 to 1")
    return rate


def _bucket(value: str) -> Bucket:
    burst, sep, per_second = value.partition("/")
    if not sep:
        raise ValueError("a bucket is BURST/PER_SECOND, e.g. 250/25")
    bucket = Bucket(int(burst), float(per_second))
    if bucket.burst < 1 or bucket.per_second <= 0:
        raise ValueError("a bucket needs a burst of at least 1 and a positive refill rate")
    return bucket


def _apply(config: FaultConfig, key: str, value: str) -> FaultConfig:
    if key == "latency":
        latency = float(value)
        if latency < 0:
            raise ValueError("latency cannot be negative")
        return replace(config, latency_ms=latency)
    if key == "error-rate":
        return replace(config, error_rate=_rate(value))
    if key == "drop-rate":
        return replace(config, drop_rate=_rate(value))
    if key == "throttle-rate":
        return replace(config, throttle_rate=_rate(value))
    if key == "retry-after":
        if int(value) < 0:
            raise ValueError("retry-after cannot be negative")
        return replace(config, retry_after=int(value))
    if key == "lro-fail":
        return replace(config, lro_failure_rate=_rate(value))
    if key == "throttle":
        if value.lower() not in ("on", "off"):
            raise ValueError("throttle is on or off")
        return replace(config, throttle=value.lower() == "on")
    if key == "reads":
        return replace(config, reads=_bucket(value))
    if key == "writes":
        return replace(config, writes=_bucket(value))
    if key == "forbid":
        if not value.startswith("/subscriptions/"):
            raise ValueError("forbid takes a scope such as /subscriptions/ID[/resourceGroups/NAME]")
        return replace(config, forbid=(*config.forbid, value))
    if key == "seed":
        return replace(config, seed=int(value))
    raise ValueError(
        "unknown fault; known: latency, error-rate, drop-rate, lro-fail, throttle, throttle-rate, retry-after, "
        "reads, writes, forbid, seed"
    )


@dataclass
class TokenBucket:
    spec: Bucket
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token; return 0, or the seconds to wait for one when the bucket is empty."""
        self.tokens = min(self.spec.burst, self.tokens + (now - self.updated) * self.spec.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.spec.per_second


@dataclass
class Faults:
    """The live fault state of one emulator. Tests may change `config` between requests."""

    config: FaultConfig = field(default_factory=FaultConfig)
    _buckets: dict[tuple[str, bool], TokenBucket] = field(default_factory=dict)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _roll(self, method: str, path: str) -> float:
        """A deterministic number in [0, 1) for this occurrence of this request."""
        key = (method, path.lower())
        with self._lock:
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
        digest = hashlib.sha256(f"{self.config.seed}|{method}|{path.lower()}|{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def throttle(self, method: str, path: str, now: float | None = None) -> dict[str, str]:
        """Raise ARM's 429 when the subscription's bucket is empty; else the headers that say what is left."""
        rate = self.config.throttle_rate
        if rate > 0 and self._roll("429|" + method, path) < rate:
            raise ArmError(
                429,
                "TooManyRequests",
                "The request is throttled. Retry after the period in Retry-After.",
                {"Retry-After": str(self.config.retry_after)},
            )
        if not self.config.throttle:
            return {}
        parts = path.split("/")
        scope = parts[2].lower() if len(parts) > 2 and parts[1].lower() == "subscriptions" else "tenant"
        write = method not in ("GET", "HEAD")
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get((scope, write))
            if bucket is None:
                spec = self.config.writes if write else self.config.reads
                bucket = self._buckets[(scope, write)] = TokenBucket(spec, float(spec.burst), now)
            wait = bucket.take(now)
            left = int(bucket.tokens)
        kind = "writes" if write else "reads"
        if wait > 0:
            raise ArmError(
                429,
                "TooManyRequests",
                f"The request is throttled: too many subscription {kind}. Retry after the period in Retry-After.",
                {"Retry-After": str(max(1, math.ceil(wait))), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"},
            )
        return {f"x-ms-ratelimit-remaining-subscription-{kind}": str(left)}

    def forbidden(self, path: str, action: str) -> None:
        for scope in self.config.forbid:
            if _within(path.lower(), scope.lower().rstrip("/")):
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    "The client 'allowlist-emulator-client' with object id "
                    "'00000000-0000-0000-0000-00000000c0de' does not have authorization to perform action "
                    f"'{action}' over scope '{path}' or the scope is invalid. If access was recently "
                    "granted, please refresh your credentials.",
                )

    def should_drop(self, method: str, path: str) -> bool:
        return self.config.drop_rate > 0 and self._roll("drop|" + method, path) < self.config.drop_rate

    def operation_fails(self, method: str, path: str) -> bool:
        rate = self.config.lro_failure_rate
        return rate > 0 and self._roll("lro|" + method, path) < rate

    def server_error(self, method: str, path: str) -> None:
        if self.config.error_rate > 0 and self._roll("error|" + method, path) < self.config.error_rate:
            raise ArmError(500, "InternalServerError", "An internal server error occurred. Please retry.")


def _within(path: str, scope: str) -> bool:
    """Whether a request falls in a forbidden scope. As role assignments inherit, a provider denied across a
    subscription (`/subscriptions/S/providers/Microsoft.Web`) is denied in each of its resource groups too."""
    if path.startswith(scope):
        return True
    parts = scope.split("/")
    if len(parts) >= 5 and parts[1] == "subscriptions" and parts[3] == "providers":
        inside, denied = path.split("/"), "/".join(parts[3:])
        rest = "/".join(inside[5:])
        return (len(inside) > 5 and inside[1:3] == parts[1:3] and inside[3] == "resourcegroups"
                and (rest == denied or rest.startswith(denied + "/")))  # fmt: skip
    return False
