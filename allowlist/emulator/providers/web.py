"""Microsoft.Web sites and deployment slots: list per subscription and per group, get, slots; and ARM's
resource list of a subscription's sites."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, not_found, page, route
from allowlist.emulator.providers.common import find_resource, require_resource_group, require_subscription
from allowlist.emulator.state import Site, State, overlay

READ = "Microsoft.Web/sites/read"
SLOT_READ = "Microsoft.Web/sites/slots/read"
RESOURCES_READ = "Microsoft.Resources/subscriptions/resources/read"
# ARM's resource list (Resources - List) filtered to one type: `resourceType eq 'Microsoft.Web/sites'`
_TYPE_FILTER = re.compile(r"^\s*resourceType\s+eq\s+'([^']+)'\s*$", re.IGNORECASE)
GENERIC_FIELDS = ("id", "name", "type", "kind", "location", "tags")  # GenericResourceExpanded, unexpanded


def _host(site: Site) -> str:
    return f"{site.name}-{site.slot}" if site.slot else site.name


def body(site: Site) -> JSON:
    """A site in the shape of the official ListWebApps / GetWebAppSlot examples."""
    host = f"{_host(site).lower()}.azurewebsites.net"
    scm = f"{_host(site).lower()}.scm.azurewebsites.net"
    props: JSON = {
        "availabilityState": "Normal",
        "clientAffinityEnabled": True,
        "clientCertEnabled": False,
        "clientCertMode": "Required",
        "containerSize": 0,
        "customDomainVerificationId": "7F3BB652450EF7AD0B6AA33064586E4A9CE823A46DF0B2EC6443A68086E84153",
        "dailyMemoryTimeQuota": 0,
        "defaultHostName": host,
        "enabled": True,
        "enabledHostNames": [host, scm],
        "hostNameSslStates": [
            {"name": host, "hostType": "Standard", "sslState": "Disabled"},
            {"name": scm, "hostType": "Repository", "sslState": "Disabled"},
        ],
        "hostNames": [host],
        "hostNamesDisabled": False,
        "httpsOnly": True,
        "hyperV": False,
        "isXenon": False,
        "keyVaultReferenceIdentity": "SystemAssigned",
        "lastModifiedTimeUtc": "2026-11-01T09:00:00.000Z",
        "outboundIpAddresses": site.outbound_ip_addresses,
        "outboundVnetRouting": {
            "allTraffic": site.all_traffic,
            "applicationTraffic": site.application_traffic,
            "backupRestoreTraffic": False,
            "contentShareTraffic": False,
            "imagePullTraffic": False,
            "managedIdentityTraffic": False,
        },
        "possibleOutboundIpAddresses": site.possible_outbound_ip_addresses,
        "redundancyMode": "None",
        "repositorySiteName": site.name,
        "reserved": "linux" in site.kind.lower(),
        "resourceConfig": {"cpu": 1, "memory": "2.0Gi"},
        "resourceGroup": site.resource_group,
        "scmSiteAlsoStopped": False,
        "serverFarmId": site.server_farm_id,
        "siteConfig": _site_config(site),
        "sku": site.sku,
        "state": "Running",
        "storageAccountRequired": False,
        "usageState": "Normal",
        # api-version 2025-05-01 no longer carries the site-level vnetRouteAllEnabled (2022-03-01 to 2024-04-01)
        "publicNetworkAccess": site.public_network_access,
        "workloadProfileName": None,
    }
    # Raw properties that only some apps carry; azure-mgmt-web 11 does not model the IPv6 ones.
    if site.outbound_ipv6_addresses is not None:
        props["outboundIpv6Addresses"] = site.outbound_ipv6_addresses
    if site.possible_outbound_ipv6_addresses is not None:
        props["possibleOutboundIpv6Addresses"] = site.possible_outbound_ipv6_addresses
    if site.virtual_network_subnet_id:
        props["virtualNetworkSubnetId"] = site.virtual_network_subnet_id
    if site.hosting_environment_id:
        props["hostingEnvironmentProfile"] = {
            "id": site.hosting_environment_id,
            "name": site.hosting_environment_id.rsplit("/", 1)[-1],
            "type": "Microsoft.Web/hostingEnvironments",
        }
    return overlay(
        {
            "id": site.id,
            "name": f"{site.name}/{site.slot}" if site.slot else site.name,
            "type": "Microsoft.Web/sites/slots" if site.slot else "Microsoft.Web/sites",
            "kind": site.kind,
            "location": site.location,
            "tags": dict(site.tags),
            "properties": props,
        },
        site.overrides,
    )


def _site_config(site: Site) -> JSON:
    linux = "linux" in site.kind.lower()
    return {
        "acrUseManagedIdentityCreds": False,
        "alwaysOn": True,
        "appCommandLine": "",
        "autoHealEnabled": False,
        "azureStorageAccounts": {},
        "defaultDocuments": ["Default.htm", "Default.html", "index.html", "hostingstart.html"],
        "detailedErrorLoggingEnabled": False,
        "ftpsState": "FtpsOnly",
        "functionAppScaleLimit": 0,
        "functionsRuntimeScaleMonitoringEnabled": False,
        "http20Enabled": True,
        "httpLoggingEnabled": False,
        "linuxFxVersion": "PYTHON|3.12" if linux else "",
        "loadBalancing": "LeastRequests",
        "logsDirectorySizeLimit": 35,
        "managedPipelineMode": "Integrated",
        "minTlsVersion": "1.2",
        "minimumElasticInstanceCount": 0,
        "netFrameworkVersion": "v4.0",
        "nodeVersion": "",
        "numberOfWorkers": 1,
        "phpVersion": "",
        "powerShellVersion": "",
        "pythonVersion": "",
        "remoteDebuggingEnabled": False,
        "requestTracingEnabled": False,
        "scmMinTlsVersion": "1.2",
        "use32BitWorkerProcess": not linux,
        "virtualApplications": [{"physicalPath": "site\\wwwroot", "preloadEnabled": False, "virtualPath": "/"}],
        "vnetName": "",
        "vnetPrivatePortsCount": 0,
        "vnetRouteAllEnabled": site.site_config_route_all,
        "webSocketsEnabled": False,
    }


def _sorted(sites: list[Site]) -> list[JSON]:
    return [body(s) for s in sorted(sites, key=lambda s: s.id.lower())]


ALLOW_ALL = {"ipAddress": "Any", "action": "Allow", "priority": 2147483647, "name": "Allow all",
             "description": "Allow all access"}  # fmt: skip
RESTRICTIONS_MAX = 512


def config_body(site: Site) -> JSON:
    """config/web as GetSiteConfig shows it, with the access restrictions (an implicit "Allow all" when none)."""
    return {
        "id": f"{site.id}/config/web",
        "name": "web",
        "type": "Microsoft.Web/sites/slots/config" if site.slot else "Microsoft.Web/sites/config",
        "properties": {
            **_site_config(site),
            "ipSecurityRestrictions": [dict(e) for e in site.ip_security_restrictions] or [dict(ALLOW_ALL)],
            "scmIpSecurityRestrictions": [dict(ALLOW_ALL)],
            "scmIpSecurityRestrictionsUseMain": False,
        },
    }


def _etag(site: Site) -> str:
    return f'"{site.config_version:08x}-0000-0000-0000-00000000c0f1"'


def _restrictions(raw: Any) -> list[JSON]:
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ArmError(400, "BadRequest", "ipSecurityRestrictions must be a list of objects.")
    kept = [e for e in raw if e.get("priority") != ALLOW_ALL["priority"]]
    for entry in kept:
        text = entry.get("ipAddress")
        if isinstance(text, str) and text != "Any" and entry.get("tag") != "ServiceTag":  # else a tag's name
            try:
                [ipaddress.ip_network(t.strip(), strict=False) for t in text.split(",")]
            except ValueError as exc:
                raise ArmError(400, "BadRequest", f"'{text}' is not an IP address or CIDR.") from exc
    if len(kept) > RESTRICTIONS_MAX:
        raise ArmError(400, "BadRequest", f"An app supports at most {RESTRICTIONS_MAX} access restrictions.")
    return kept


def routes(page_size: int, fail_write: Callable[[Request], bool] | None = None) -> list[Route]:
    base = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Web/sites"

    def list_sites(request: Request, state: State) -> Response:
        require_subscription(request, state)
        sub = request.params["subscriptionId"].lower()
        with state.lock:
            return page(request, _sorted(state.sites_in(sub)), page_size)

    def list_resources(request: Request, state: State) -> Response:
        """The subscription's resources of one type, as ARM lists any resource: no properties. The emulator
        lists sites this way; any other filter is refused rather than answered wrongly."""
        require_subscription(request, state)
        found = _TYPE_FILTER.match(request.query.get("$filter", ""))
        if found is None or found.group(1).lower() != "microsoft.web/sites":
            raise ArmError(400, "InvalidFilterInQueryString", "The emulator lists resources of type "
                           "Microsoft.Web/sites only: $filter=resourceType eq 'Microsoft.Web/sites'.")  # fmt: skip
        with state.lock:
            sites = _sorted(state.sites_in(request.params["subscriptionId"].lower()))
        return page(request, [{k: s[k] for k in GENERIC_FIELDS if k in s} for s in sites], page_size)

    def list_by_group(request: Request, state: State) -> Response:
        require_resource_group(request, state)
        sub, group = request.params["subscriptionId"].lower(), request.params["resourceGroupName"].lower()
        with state.lock:
            sites = state.sites_in(sub, group)
            if request.query.get("includeSlots", "").lower() == "true":
                sites += [slot for s in sites for slot in s.slots.values()]
            return page(request, _sorted(sites), page_size)

    def find(request: Request, state: State) -> Site:
        return find_resource(request, state, state.sites, "Microsoft.Web/sites", "name")

    def get_site(request: Request, state: State) -> Response:
        with state.lock:
            return Response(200, body(find(request, state)))

    def list_slots(request: Request, state: State) -> Response:
        with state.lock:
            return page(request, _sorted(list(find(request, state).slots.values())), page_size)

    def get_slot(request: Request, state: State) -> Response:
        with state.lock:
            return Response(200, body(find_app(request, state)))

    def find_app(request: Request, state: State) -> Site:
        """The site, or with a {slot} in the path its deployment slot: each has its own config/web."""
        site = find(request, state)
        if "slot" not in request.params:
            return site
        slot = site.slots.get(request.params["slot"].lower())
        if slot is None:
            raise not_found("Microsoft.Web/sites/slots", f"{site.name}/{request.params['slot']}")
        return slot

    def get_config(request: Request, state: State) -> Response:
        with state.lock:
            site = find_app(request, state)
            return Response(200, config_body(site), {"ETag": _etag(site)})

    def patch_config(request: Request, state: State) -> Response:
        payload = request.json()
        props = payload.get("properties") if isinstance(payload, dict) else None
        if not isinstance(props, dict):
            raise ArmError(400, "BadRequest", "The request must carry properties.")
        entries = _restrictions(props["ipSecurityRestrictions"]) if "ipSecurityRestrictions" in props else None
        with state.lock:
            site = find_app(request, state)
            if fail_write is not None and fail_write(request):
                raise ArmError(409, "Conflict", f"The app '{site.name}' is being updated. Retry later.")
            wanted = request.headers.get("if-match")
            if wanted is not None and wanted.strip() not in ("*", _etag(site)):
                raise ArmError(412, "PreconditionFailed", f"config/web of '{site.name}' changed since it was read.")
            if entries is not None:
                before = site.restriction_rules()
                site.ip_security_restrictions = entries
                state.record_changes(site.id, before, site.restriction_rules())
            site.config_version += 1
            return Response(200, config_body(site), {"ETag": _etag(site)})

    return [
        route("GET", base + "/{name}/config/web", get_config, "Microsoft.Web/sites/config/read"),
        route("PATCH", base + "/{name}/config/web", patch_config, "Microsoft.Web/sites/config/write"),
        route("GET", base + "/{name}/slots/{slot}/config/web", get_config, "Microsoft.Web/sites/slots/config/read"),
        route(
            "PATCH", base + "/{name}/slots/{slot}/config/web", patch_config, "Microsoft.Web/sites/slots/config/write"
        ),
        route("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Web/sites", list_sites, READ),
        route("GET", "/subscriptions/{subscriptionId}/resources", list_resources, RESOURCES_READ),
        route("GET", base, list_by_group, READ),
        route("GET", base + "/{name}", get_site, READ),
        route("GET", base + "/{name}/slots", list_slots, SLOT_READ),
        route("GET", base + "/{name}/slots/{slot}", get_slot, SLOT_READ),
    ]
