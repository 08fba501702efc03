"""Azure Resource Graph's query endpoint (POST /providers/Microsoft.ResourceGraph/resources), answering
the small part of KQL allowlist sends: `resources | where type in~ (...) | project ... | order by id asc`,
paged with `$top` and `$skipToken`, rows shaped as the official examples show them (lower-case `type`).

Sites, slots, servers and accounts come from the estate as their providers serve them; subnets are not Resource Graph
rows of their own, so they are served inside their virtual networks, as Azure indexes them.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections import OrderedDict
from typing import Any

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, route
from allowlist.emulator.providers import accounts, flexible, keyvault, redis, sql, web
from allowlist.emulator.state import COSMOSDB, KEYVAULT, MYSQL, POSTGRESQL, REDIS, SQL, STORAGE, State

PATH = "/providers/Microsoft.ResourceGraph/resources"
# Servers and accounts as their own providers show them (firewall rules are child resources: not rows).
SERVER_BODIES = {SQL: sql.server_body, POSTGRESQL: flexible.server_body, MYSQL: flexible.server_body,
                 REDIS: redis.cache_body}  # fmt: skip
ACCOUNT_BODIES = {COSMOSDB: accounts.cosmos_body, STORAGE: accounts.storage_body, KEYVAULT: keyvault.vault_body}
_WHERE = re.compile(r"^where\s+type\s+(?:in~\s*\((?P<many>[^)]*)\)|=~\s*'(?P<one>[^']*)')$", re.IGNORECASE)
_PROJECT = re.compile(r"^project\s+(?P<fields>[\w\s,]+)$", re.IGNORECASE)
_ORDER = re.compile(r"^order\s+by\s+id(\s+asc)?$", re.IGNORECASE)


def _rows(state: State) -> list[JSON]:
    rows: list[JSON] = []
    for site in state.sites.values():
        rows.append(web.body(site))
        rows += [web.body(slot) for slot in site.slots.values()]
    vnets: dict[str, JSON] = {}
    for body in state.network.values():
        kind = str(body.get("type", ""))
        if kind == "Microsoft.Network/virtualNetworks/subnets":
            vnet_id = str(body["id"]).rsplit("/subnets/", 1)[0]
            vnet = vnets.setdefault(vnet_id.lower(), {
                "id": vnet_id, "name": vnet_id.rsplit("/", 1)[-1], "type": "Microsoft.Network/virtualNetworks",
                "properties": {"subnets": []},
            })  # fmt: skip
            vnet["properties"]["subnets"].append(body)
        elif kind.startswith("Microsoft.Network/") or kind == "Microsoft.Web/hostingEnvironments":
            rows.append(body)
    rows += vnets.values()
    rows += [SERVER_BODIES[server.type](server) for server in state.servers.values()]
    rows += [ACCOUNT_BODIES[account.type](account) for account in state.accounts.values()]
    return [{**row, "type": str(row.get("type", "")).lower()} for row in rows]


def run_query(state: State, kql: str, subscriptions: list[str] | None) -> list[JSON]:
    stages = [s.strip() for s in kql.split("|")]
    if not stages or stages[0].lower() != "resources":
        raise ArmError(400, "BadRequest", "The emulated Resource Graph reads the 'resources' table only.")
    with state.lock:
        rows = _rows(state)
    if subscriptions is not None:
        wanted = {s.lower() for s in subscriptions}
        rows = [r for r in rows if str(r["id"]).split("/")[2].lower() in wanted]
    for stage in stages[1:]:
        if m := _WHERE.match(stage):
            types = {t.strip().strip("'").lower() for t in (m["many"] or m["one"] or "").split(",")}
            rows = [r for r in rows if r["type"] in types]
        elif m := _PROJECT.match(stage):
            fields = [f.strip() for f in m["fields"].split(",") if f.strip()]
            rows = [{f: r.get(f) for f in fields} for r in rows]
        elif _ORDER.match(stage):
            rows.sort(key=lambda r: str(r.get("id", "")).lower())
        else:
            raise ArmError(400, "BadRequest", f"The emulated Resource Graph does not support '{stage}'.")
    return rows


SNAPSHOTS_KEPT = 32  # queries whose later pages can still be asked for


def routes() -> list[Route]:
    # Like the service, a query's pages come from one snapshot, named in its $skipToken: later pages are
    # sliced from it, not made again (making 110,000 rows per page made the emulator's CPU quadratic).
    snapshots: OrderedDict[str, list[JSON]] = OrderedDict()
    lock = threading.Lock()

    def resources(request: Request, state: State) -> Response:
        body: Any = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ArmError(400, "BadRequest", "The request must carry a 'query'.")
        options = body.get("options") or {}
        top = int(options.get("$top", 100))
        token = options.get("$skipToken")
        snapshot, _, offset = base64.b64decode(token).decode().partition(":") if token else ("", "", "")
        with lock:
            rows = snapshots.get(snapshot)
        if rows is None:
            subscriptions = body.get("subscriptions")
            rows = run_query(state, body["query"], subscriptions if isinstance(subscriptions, list) else None)
            snapshot, offset = uuid.uuid4().hex, offset or str(options.get("$skip", 0))
            with lock:
                snapshots[snapshot] = rows
                while len(snapshots) > SNAPSHOTS_KEPT:
                    snapshots.popitem(last=False)
        skip = int(offset)
        page = rows[skip : skip + top]
        answer: JSON = {"totalRecords": len(rows), "count": len(page), "resultTruncated": "false", "facets": [],
                        "data": page}  # fmt: skip
        if skip + top < len(rows):
            answer["$skipToken"] = base64.b64encode(f"{snapshot}:{skip + top}".encode()).decode()
        return Response(200, answer)

    return [route("POST", PATH, resources, "Microsoft.ResourceGraph/resources/read")]
