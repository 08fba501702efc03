"""What egress resolution reads, served as stored: subnets, NAT gateways, public IP addresses and
prefixes, route tables and Azure Firewalls (Microsoft.Network), and App Service Environments v3 with
their networking configuration (Microsoft.Web), in the shapes of the official examples. The estate file
builds these bodies (see `build_network`); this module only finds them."""

from __future__ import annotations

import ipaddress
from typing import Any

from allowlist.emulator.http import ArmError, Request, Response, Route, page, route
from allowlist.emulator.providers.common import require_resource_group, require_subscription
from allowlist.emulator.state import State

JSON = dict[str, Any]
GROUP = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
NETWORK_TYPES = {  # path segment -> (ARM type, RBAC read action)
    "natGateways": "Microsoft.Network/natGateways",
    "publicIPAddresses": "Microsoft.Network/publicIPAddresses",
    "publicIPPrefixes": "Microsoft.Network/publicIPPrefixes",
    "routeTables": "Microsoft.Network/routeTables",
    "azureFirewalls": "Microsoft.Network/azureFirewalls",
}


def _id(request: Request, tail: str) -> str:
    p = request.params
    return f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}/providers/{tail}"


def _find(request: Request, state: State, resource_id: str, kind: str) -> JSON:
    require_resource_group(request, state)
    found = state.network.get(resource_id.lower())
    if found is None:
        raise ArmError(404, "ResourceNotFound", f"The Resource '{kind}/{resource_id.rsplit('/', 1)[-1]}' under "
                       f"resource group '{request.params['resourceGroupName']}' was not found.")  # fmt: skip
    return found


def routes(page_size: int) -> list[Route]:
    found: list[Route] = []
    for segment, arm_type in NETWORK_TYPES.items():

        def get(request: Request, state: State, arm_type: str = arm_type) -> Response:
            with state.lock:
                return Response(
                    200, _find(request, state, _id(request, f"{arm_type}/{request.params['name']}"), arm_type)
                )

        found.append(route("GET", GROUP + f"Microsoft.Network/{segment}/{{name}}", get, f"{arm_type}/read"))

    def get_subnet(request: Request, state: State) -> Response:
        p = request.params
        tail = f"Microsoft.Network/virtualNetworks/{p['vnet']}/subnets/{p['name']}"
        with state.lock:
            return Response(200, _find(request, state, _id(request, tail), "Microsoft.Network/virtualNetworks/subnets"))

    def list_firewalls(request: Request, state: State) -> Response:
        require_subscription(request, state)
        prefix = f"/subscriptions/{request.params['subscriptionId']}/".lower()
        with state.lock:
            items = [b for k, b in sorted(state.network.items())
                     if k.startswith(prefix) and b.get("type") == "Microsoft.Network/azureFirewalls"]  # fmt: skip
        return page(request, items, page_size)

    def get_ase(request: Request, state: State) -> Response:
        tail = f"Microsoft.Web/hostingEnvironments/{request.params['name']}"
        with state.lock:
            return Response(200, _find(request, state, _id(request, tail), "Microsoft.Web/hostingEnvironments"))

    def get_ase_networking(request: Request, state: State) -> Response:
        tail = f"Microsoft.Web/hostingEnvironments/{request.params['name']}/configurations/networking"
        with state.lock:
            return Response(200, _find(request, state, _id(request, tail), "Microsoft.Web/hostingEnvironments"))

    subnet = GROUP + "Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}"
    ase = GROUP + "Microsoft.Web/hostingEnvironments/{name}"
    return [
        *found,
        route("GET", subnet, get_subnet, "Microsoft.Network/virtualNetworks/subnets/read"),
        route(
            "GET",
            "/subscriptions/{subscriptionId}/providers/Microsoft.Network/azureFirewalls",
            list_firewalls,
            "Microsoft.Network/azureFirewalls/read",
        ),
        route("GET", ase, get_ase, "Microsoft.Web/hostingEnvironments/read"),
        route("GET", ase + "/configurations/networking", get_ase_networking, "Microsoft.Web/hostingEnvironments/read"),
    ]


# --- bodies, as the official examples shape them ------------------------------------------------------


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _refs(ids: list[str]) -> list[JSON]:
    return [{"id": i} for i in ids]


def subnet_body(resource_id: str, address_prefix: str, nat_gateway: str | None, route_table: str | None,
                service_endpoints: list[str]) -> JSON:  # fmt: skip
    props: JSON = {"addressPrefix": address_prefix, "provisioningState": "Succeeded"}
    if nat_gateway:
        props["natGateway"] = {"id": nat_gateway}
    if route_table:
        props["routeTable"] = {"id": route_table}
    if service_endpoints:
        props["serviceEndpoints"] = [{"service": s, "locations": ["*"], "provisioningState": "Succeeded"}
                                     for s in service_endpoints]  # fmt: skip
    return {"id": resource_id, "name": _name(resource_id), "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": props}  # fmt: skip


def nat_gateway_body(resource_id: str, public_ips: list[str], prefixes: list[str], location: str) -> JSON:
    return {
        "id": resource_id, "name": _name(resource_id), "type": "Microsoft.Network/natGateways",
        "location": location, "sku": {"name": "Standard"},
        "properties": {"idleTimeoutInMinutes": 4, "provisioningState": "Succeeded",
                       "publicIpAddresses": _refs(public_ips), "publicIpPrefixes": _refs(prefixes), "subnets": []},
    }  # fmt: skip


def public_ip_body(resource_id: str, address: str, location: str) -> JSON:
    version = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    return {
        "id": resource_id, "name": _name(resource_id), "type": "Microsoft.Network/publicIPAddresses",
        "location": location, "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {"provisioningState": "Succeeded", "publicIPAddressVersion": version,
                       "publicIPAllocationMethod": "Static", "idleTimeoutInMinutes": 4, "ipTags": [],
                       "ipAddress": address},
    }  # fmt: skip


def public_ip_prefix_body(resource_id: str, prefix: str, location: str) -> JSON:
    network = ipaddress.ip_network(prefix)
    props: JSON = {
        "provisioningState": "Succeeded",
        "resourceGuid": "00000000-0000-0000-0000-0000000000a1",
        "publicIPAddressVersion": f"IPv{network.version}",
        "prefixLength": network.prefixlen,
        "ipPrefix": str(network),
        "ipTags": [],
        "publicIPAddresses": [],
    }
    return {
        "id": resource_id, "name": _name(resource_id), "type": "Microsoft.Network/publicIPPrefixes",
        "location": location, "sku": {"name": "Standard"}, "etag": 'W/"00000000-0000-0000-0000-000000000001"',
        "properties": props,
    }  # fmt: skip


def route_table_body(resource_id: str, routes: list[JSON], location: str) -> JSON:
    out = []
    for r in routes:
        props: JSON = {"addressPrefix": r["address_prefix"], "nextHopType": r["next_hop_type"],
                       "provisioningState": "Succeeded"}  # fmt: skip
        if r.get("next_hop_ip"):
            props["nextHopIpAddress"] = r["next_hop_ip"]
        out.append({"name": r["name"], "id": f"{resource_id}/routes/{r['name']}", "properties": props})
    return {
        "id": resource_id, "name": _name(resource_id), "type": "Microsoft.Network/routeTables", "location": location,
        "properties": {"disableBgpRoutePropagation": False, "provisioningState": "Succeeded", "routes": out},
    }  # fmt: skip


def azure_firewall_body(resource_id: str, private_ip: str, public_ips: list[str], location: str) -> JSON:
    configs = [
        {"name": f"ipconfig{i}", "id": f"{resource_id}/azureFirewallIpConfigurations/ipconfig{i}",
         "etag": 'W/"00000000-0000-0000-0000-000000000001"',
         "properties": {"privateIPAddress": private_ip if i == 0 else None, "provisioningState": "Succeeded",
                        "publicIPAddress": {"id": pip}}}
        for i, pip in enumerate(public_ips)
    ]  # fmt: skip
    return {
        "id": resource_id, "name": _name(resource_id), "type": "Microsoft.Network/azureFirewalls",
        "location": location, "tags": {}, "etag": 'W/"00000000-0000-0000-0000-000000000001"',
        "properties": {"provisioningState": "Succeeded", "ipConfigurations": configs,
                       "sku": {"name": "AZFW_VNet", "tier": "Standard"}, "threatIntelMode": "Alert",
                       "applicationRuleCollections": [], "natRuleCollections": [], "networkRuleCollections": [],
                       "ipGroups": [], "additionalProperties": {}},
    }  # fmt: skip


def ase_bodies(resource_id: str, subnet: str, windows: list[str], linux: list[str], location: str) -> list[JSON]:
    ase = {
        "id": resource_id, "name": _name(resource_id), "type": "Microsoft.Web/hostingEnvironments",
        "kind": "ASEV3", "location": location,
        "properties": {"provisioningState": "Succeeded", "status": "Ready",
                       "virtualNetwork": {"id": subnet, "subnet": _name(subnet)}, "internalLoadBalancingMode": "None"},
    }  # fmt: skip
    networking = {
        "id": f"{resource_id}/configurations/networking", "name": "networking",
        "type": "Microsoft.Web/hostingEnvironments/configurations/networking",
        "properties": {"windowsOutboundIpAddresses": windows, "linuxOutboundIpAddresses": linux,
                       "externalInboundIpAddresses": [], "internalInboundIpAddresses": [],
                       "allowNewPrivateEndpointConnections": False, "ftpEnabled": False,
                       "remoteDebugEnabled": False, "inboundIpAddressOverride": None},
    }  # fmt: skip
    return [ase, networking]
