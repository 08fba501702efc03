"""Credentials, endpoint, retry settings and lazily built, cached Azure SDK clients.

The SDK is imported inside functions so `allowlist --help` starts fast.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from allowlist.errors import AuthError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

PUBLIC_ARM = "https://management.azure.com"
TOKEN_ENV = "ALLOWLIST_ACCESS_TOKEN"
ENDPOINT_ENV = "ALLOWLIST_ARM_ENDPOINT"


@dataclass(frozen=True)
class ArmSettings:
    endpoint: str = PUBLIC_ARM
    ca_bundle: str | None = None  # None: the system store, or REQUESTS_CA_BUNDLE; TLS is never switched off
    retry_total: int = 6
    retry_backoff: float = 0.8
    timeout: float = 60.0
    poll_interval: float = 5.0  # seconds between long-running operation polls, unless ARM says
    operation_timeout: float = 900.0  # longest wait for one long-running operation

    @property
    def scope(self) -> str:
        # The token audience is the ARM endpoint itself (sovereign clouds and Azure Stack included).
        return self.endpoint.rstrip("/") + "/.default"


class StaticTokenCredential:
    """A pre-issued ARM token (e.g. from a pipeline's service connection); never printed or logged."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def __repr__(self) -> str:
        return "StaticTokenCredential(<redacted>)"


def make_credential() -> TokenCredential:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return StaticTokenCredential(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class ArmClients:
    """One client per (service, subscription), made on first use and shared across threads."""

    def __init__(self, settings: ArmSettings, credential: TokenCredential | None = None) -> None:
        self.settings = settings
        self._credential = credential
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def credential(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                self._credential = make_credential()
            return self._credential

    def _options(self) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {
            "base_url": s.endpoint,
            "credential_scopes": [s.scope],
            # azure-core also caps each kind of retry at 3 unless told: a 429 storm needs more.
            "retry_total": s.retry_total,
            "retry_status": s.retry_total,
            "retry_connect": s.retry_total,
            "retry_read": s.retry_total,
            "retry_backoff_factor": s.retry_backoff,
            "connection_timeout": s.timeout,
            "read_timeout": s.timeout,
            "polling_interval": s.poll_interval,
        }
        if s.ca_bundle:
            options["connection_verify"] = s.ca_bundle
        return options

    def client(self, service: str, subscription_id: str = "") -> Any:
        """The SDK client for a service (a key of CLIENTS) in one subscription, made once."""
        key = (service, subscription_id.lower())
        credential = self.credential
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                module, name = CLIENTS[service]
                cls = getattr(importlib.import_module(module), name)
                args = (credential,) if service == "subscriptions" else (credential, subscription_id)
                client = self._clients[key] = cls(*args, **self._options())
            return client


# Imported on first use, so `allowlist --help` never loads the SDK.
CLIENTS = {
    "subscriptions": ("azure.mgmt.resource.subscriptions", "SubscriptionClient"),
    "web": ("azure.mgmt.web", "WebSiteManagementClient"),
    "sql": ("azure.mgmt.sql", "SqlManagementClient"),
    "postgresql": ("azure.mgmt.postgresqlflexibleservers", "PostgreSQLManagementClient"),
    "mysql": ("azure.mgmt.mysqlflexibleservers", "MySQLManagementClient"),
    "cosmosdb": ("azure.mgmt.cosmosdb", "CosmosDBManagementClient"),
    "storage": ("azure.mgmt.storage", "StorageManagementClient"),
}


def list_raw(client: Any, path: str, **query: str) -> Iterator[dict[str, Any]]:
    """A paged ARM list as raw JSON, through the SDK client's own pipeline (auth, retries, Retry-After).

    For site lists: azure-mgmt-web 11 builds a full model tree per site (~4 ms each), which dominates
    a run over thousands of apps, and the raw JSON also keeps fields it does not model (IPv6).
    """
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, map_error
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat

    api_version = client._config.api_version  # the version this SDK speaks, as its own calls send
    url: str | None = f"{path}?{urlencode({**query, 'api-version': api_version})}"
    while url:
        response = client.send_request(HttpRequest("GET", url))
        if response.status_code != 200:
            map_error(response.status_code, response, {401: ClientAuthenticationError, 404: ResourceNotFoundError})
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        body = response.json()
        yield from body.get("value") or []
        url = body.get("nextLink")
        if url and "api-version=" not in url:
            url += f"{'&' if '?' in url else '?'}api-version={api_version}"


def describe(exc: Exception) -> str:
    """One line for an SDK error: status, ARM error code and message; never headers or tokens."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
        return f"could not get a token: {_first_line(str(exc.message))}"
    if isinstance(exc, HttpResponseError):
        code = exc.error.code if exc.error is not None and exc.error.code else (exc.reason or "")
        message = exc.error.message if exc.error is not None and exc.error.message else str(exc.message)
        return f"{exc.status_code} {code}: {_first_line(message)}".strip()
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def raise_if_auth(exc: Exception) -> None:
    """A 401 or a credential that cannot get a token stops the whole run: nothing else would work."""
    from azure.core.exceptions import ClientAuthenticationError

    if isinstance(exc, ClientAuthenticationError):
        hint = (
            f" (sign in with `az login`, use a managed or workload identity, set AZURE_CLIENT_ID and friends, or "
            f"give a token in {TOKEN_ENV})"
            if exc.status_code is None
            else ""
        )
        raise AuthError(f"authentication failed: {describe(exc)}{hint}") from exc
