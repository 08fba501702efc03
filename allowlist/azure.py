"""Credentials, endpoint, retry settings and lazily built, cached Azure SDK clients.

The SDK is imported inside functions so `allowlist --help` starts fast.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from allowlist.armpolicies import RunTimeout, WritePacer, make_pacing_policy, make_request_id_policy, make_retry_policy
from allowlist.errors import TOKEN_ENV

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

    from allowlist.armloop import ArmLoop, RestCall

__all__ = ["ArmClients", "ArmSettings", "RunTimeout", "StaticTokenCredential", "make_credential"]

PUBLIC_ARM = "https://management.azure.com"
ENDPOINT_ENV = "ALLOWLIST_ARM_ENDPOINT"


@dataclass(frozen=True)
class ArmSettings:
    endpoint: str = PUBLIC_ARM
    ca_bundle: str | None = None  # None: certifi's bundle (else the system's); TLS is never switched off
    retry_total: int = 6
    retry_backoff: float = 0.8
    timeout: float = 60.0
    poll_interval: float = 5.0  # seconds between long-running operation polls, unless ARM says
    operation_timeout: float = 900.0  # longest wait for one long-running operation
    deadline: float | None = None  # time.monotonic() by which the whole run must end (--timeout)
    restriction_priority: int = 65000  # for App Service access restrictions (policy, from Settings)

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


PageSink = Callable[[int, list[Any]], None]


def list_url(path: str, api_version: str, **query: str) -> str:
    """`$filter=resourceType%20eq%20'Microsoft.Web/sites'`: OData's own characters left as they are."""
    encoded = urlencode({**query, "api-version": api_version}, safe="$'/", quote_via=quote)
    return f"{path}?{encoded}"


def next_page(body: Any, api_version: str) -> str | None:
    """A list page's nextLink, with the api-version ARM sometimes leaves off it."""
    url = body.get("nextLink")
    if not isinstance(url, str) or not url:
        return None
    return url if "api-version=" in url else f"{url}{'&' if '?' in url else '?'}api-version={api_version}"


def raise_for_status(response: Any) -> None:
    """An error status raised as the SDK's own calls raise it: HttpResponseError with ARM's code and message."""
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.core.exceptions import ARMErrorFormat

    if response.status_code >= 400:
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)


def json_answer(response: Any) -> Any:
    """A GET's JSON, or the error the SDK would raise for its status (401 and 404 mapped, else ARM's code)."""
    import orjson
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, map_error
    from azure.mgmt.core.exceptions import ARMErrorFormat

    if response.status_code != 200:
        map_error(response.status_code, response, {401: ClientAuthenticationError, 404: ResourceNotFoundError})
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    return orjson.loads(response.content)  # pages of 100 sites: several times faster than json


class ArmClients:
    """One client per (service, subscription), made on first use and shared across threads."""

    def __init__(self, settings: ArmSettings, credential: TokenCredential | None = None) -> None:
        import logging  # here, not at start-up: `allowlist --help` never needs it

        # The Azure SDK logs warnings (a page per failed credential) through `logging`; allowlist reports
        # failures itself, in one line.
        logging.getLogger("azure").addHandler(logging.NullHandler())
        logging.getLogger("azure").propagate = False
        self.settings = settings
        self._credential = credential
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._transport: Any = None
        self._pacing: Any = None
        self._raw: Any = None
        self._loop_open: Any = None  # armloop.ArmLoop while event_loop() is held
        self._loop_users = 0
        self.pacer = WritePacer()

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
            "polling_interval": s.poll_interval,
        }
        options["retry_policy"] = make_retry_policy(s)
        options["per_retry_policies"] = [self._pacing_policy()]
        options["transport"] = self._shared_transport()
        return options

    def _pacing_policy(self) -> Any:
        with self._lock:
            if self._pacing is None:
                self._pacing = make_pacing_policy(self.pacer)
            return self._pacing

    def _shared_transport(self) -> Any:
        """One connection pool for every client: TLS sessions are made once per connection, not per client."""
        with self._lock:
            return self._make_transport()

    def _make_transport(self) -> Any:
        if self._transport is None:
            with _IMPORTS:  # urllib3 only when a synchronous call is made: a plan makes none
                from allowlist.transport import Urllib3Transport

            self._transport = Urllib3Transport(self.settings.ca_bundle, self.settings.timeout)
        return self._transport

    def send(self, method: str, url: str, body: Any = None, etag: str | None = None) -> Any:
        """One raw ARM request (a path with its api-version) through the raw pipeline, or the event loop
        while one is open (less CPU, and no thread contending with its writes). An error status raises
        HttpResponseError with ARM's code and message, as the SDK's own calls do."""
        headers = {"If-Match": etag} if etag else {}
        with self._held() as loop:
            if loop is not None:
                response = loop.send(method, url, body, headers)
            else:
                client = self.raw()
                from azure.core.rest import HttpRequest  # loaded with the client, see raw()

                response = client.send_request(HttpRequest(method, url, json=body, headers=headers))
        raise_for_status(response)
        return response

    def send_all(
        self, calls: Sequence[RestCall], width: int, each: Callable[[], None] = lambda: None
    ) -> list[Exception | None]:
        """Raw ARM writes, `width` at once, from one event loop (see armloop): in their order, None for
        each that succeeded, else the error that `send` would have raised for it."""
        with self.event_loop() as loop:
            return loop.send_all(calls, width, each)

    @contextmanager
    def event_loop(self, limit: int = 32) -> Iterator[ArmLoop]:
        """One event loop carrying ARM calls (see armloop), kept open with its connections while any caller
        holds it: plan holds it while it reads, so GETs go through it; apply for its write phase, so every
        target's writes share it. `limit`: writes in flight from all callers together, set by the caller
        that opens it."""
        armloop = _import_runtime("allowlist.armloop")  # azure-core first, one thread at a time
        credential = self.credential
        with self._held(lambda: armloop.ArmLoop(self.settings, credential, self.pacer, limit)) as loop:
            assert loop is not None
            yield loop

    @contextmanager
    def _held(self, make: Callable[[], ArmLoop] | None = None) -> Iterator[ArmLoop | None]:
        """The event loop, held while in use so its last other user cannot close it mid-call; made by `make`
        when none is open, else (no `make`: a single call does not open one) None."""
        with self._lock:
            if self._loop_open is None and make is not None:
                self._loop_open = make()
            loop = self._loop_open
            if loop is not None:
                self._loop_users += 1
        if loop is None:
            yield None
            return
        try:
            yield loop
        finally:
            with self._lock:
                self._loop_users -= 1
                done = self._loop_users == 0
                if done:
                    self._loop_open = None
            if done:
                loop.close()

    def raw(self) -> Any:
        """azure-core's pipeline with only what a raw ARM call needs: a request ID for support, the user
        agent, retries, pacing and the bearer token, over the shared transport. The SDK clients add
        content decoding, redirects, provider registration, tracing and logging hooks to every call,
        which at 27,000 writes is seconds of CPU, and a raw call uses none of them."""
        client = self._raw
        if client is not None:
            return client
        _import_runtime()
        from azure.core import PipelineClient
        from azure.core.pipeline import policies
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

        from allowlist import __version__

        base = self.settings.endpoint.rstrip("/")

        class RawClient(PipelineClient):  # type: ignore[type-arg]
            def send_request(self, request: Any, **kwargs: Any) -> Any:
                if request.url.startswith("/"):  # a path (next links are whole URLs)
                    request.url = base + request.url
                return super().send_request(request, **kwargs)

        made = RawClient(
            base_url=base,
            policies=[
                make_request_id_policy(),
                policies.UserAgentPolicy(sdk_moniker=f"allowlist/{__version__}"),
                make_retry_policy(self.settings),
                ARMChallengeAuthenticationPolicy(self.credential, self.settings.scope),
            ],
            per_retry_policies=[self._pacing_policy()],
            transport=self._shared_transport(),
        )
        with self._lock:
            if self._raw is None:
                self._raw = made
            return self._raw

    def get_raw(self, path: str, api_version: str) -> dict[str, Any]:
        """One ARM resource as raw JSON, through the raw pipeline (auth, retries, Retry-After, pacing)."""
        body = self._get_json(f"{path}?{urlencode({'api-version': api_version})}")
        if not isinstance(body, dict):
            raise ValueError(f"{path}: the answer is not a JSON object")
        return body

    def list_raw(self, path: str, api_version: str, **query: str) -> Iterator[dict[str, Any]]:
        """A paged ARM list as raw JSON, through the raw pipeline (auth, retries, Retry-After, pacing).

        For site lists: azure-mgmt-web 11 builds a full model tree per site (~4 ms each), which dominates
        a run over thousands of apps, and the raw JSON also keeps fields it does not model (IPv6).
        """
        url: str | None = list_url(path, api_version, **query)
        while url:
            body = self._get_json(url)
            yield from body.get("value") or []
            url = next_page(body, api_version)

    def read_lists(
        self, urls: Sequence[str], api_version: str, width: int, on_page: PageSink, each: Callable[[int], None]
    ) -> list[Exception | None]:
        """Many paged lists (first URLs from list_url), `width` at once, read in the event loop: each page's
        items go to on_page(index, items) there as they arrive (so no page outlives its conversion, and no
        thread waits on each page); each(index) as a list ends. Per list, None or what failed it."""
        with self.event_loop() as loop:
            return loop.read_lists(urls, api_version, width, on_page, each)

    def _get_json(self, url: str) -> Any:
        with self._held() as loop:  # GETs go through the event loop while one is open: less CPU per call
            if loop is not None:
                return loop.get_json(url)
        client = self.raw()  # first: it imports azure-core under the import lock
        from azure.core.rest import HttpRequest

        return json_answer(client.send_request(HttpRequest("GET", url)))

    def api_version(self, service: str) -> str:
        """The REST version raw calls to a service ask for: pinned where allowlist parses the JSON itself
        (so importing that SDK is not needed), else the version the service's SDK speaks."""
        return RAW_API_VERSIONS.get(service) or str(self.client(service)._config.api_version)

    def client(self, service: str, subscription_id: str = "") -> Any:
        """The SDK client for a source (a key of CLIENTS) or a back end's kind, in one subscription, made once.

        Lock-free when it exists. SDK modules are imported one at a time (two threads importing azure.core
        at once can see a partly initialised module); the client is built outside the lock."""
        key = (service, subscription_id.lower())
        client = self._clients.get(key)
        if client is not None:
            return client
        module, name = client_spec(service)
        cls = getattr(_import_runtime(module), name)
        args = (self.credential,) if service in TENANT_CLIENTS else (self.credential, subscription_id)
        made = cls(*args, **self._options())
        with self._lock:
            return self._clients.setdefault(key, made)


# The sources' clients; each back end names its own in its descriptor. Imported on first use, so
# `allowlist --help` never loads the SDK.
CLIENTS = {
    "subscriptions": ("azure.mgmt.resource.subscriptions", "SubscriptionClient"),
    "web": ("azure.mgmt.web", "WebSiteManagementClient"),
}
TENANT_CLIENTS = {"subscriptions"}  # not bound to one subscription


# Pinned, not whatever the installed SDK defaults to: allowlist reads these answers itself, so their shape
# must not move under it (web 2025-05-01 dropped the site-level vnetRouteAllEnabled, for one).
RAW_API_VERSIONS = {"subscriptions": "2022-12-01", "resources": "2021-04-01", "resourcegraph": "2022-10-01",
                    "web": "2025-05-01", "sql": "2025-01-01"}  # fmt: skip

_IMPORTS = threading.Lock()
# Imported by whichever of client() and raw() runs first, under _IMPORTS: a thread importing part of
# azure.core while another imports the rest can deadlock on their module locks (seen: `audit`).
RUNTIME_MODULES = ("azure.core", "azure.core.rest", "azure.core.exceptions", "azure.core.pipeline.policies",
                   "azure.mgmt.core.exceptions", "azure.mgmt.core.policies")  # fmt: skip


def _import_runtime(module: str = "") -> Any:
    """RUNTIME_MODULES, then `module` (when given, it is returned), one thread at a time."""
    with _IMPORTS:
        for needed in RUNTIME_MODULES:
            importlib.import_module(needed)
        return importlib.import_module(module) if module else None


def client_spec(service: str) -> tuple[str, str]:
    if service in CLIENTS:
        return CLIENTS[service]
    from allowlist.targets.registry import BACKENDS

    return BACKENDS[service].client
