"""ARM's Tags API at resource scope (`{resource}/providers/Microsoft.Resources/tags/default`), for the
servers and accounts allowlist syncs: GET, and PATCH with `Merge`, `Replace` or `Delete`. A change to an
account's tags changes its ETag, as any write to the account does."""

from __future__ import annotations

from allowlist.emulator.http import JSON, ArmError, Handler, Request, Response, Route, route
from allowlist.emulator.providers.common import require_resource_group
from allowlist.emulator.state import (
    COSMOSDB,
    KEYVAULT,
    MYSQL,
    POSTGRESQL,
    REDIS,
    SQL,
    STORAGE,
    IpListAccount,
    State,
)

TAGGED_TYPES = (SQL, POSTGRESQL, MYSQL, COSMOSDB, STORAGE, REDIS, KEYVAULT, "Microsoft.Web/sites")
SLOT = "/{name}/slots/{slot}"  # deployment slots carry tags (and so a lease) like their sites
SUFFIX = "/providers/Microsoft.Resources/tags/default"


def _body(resource_id: str, tags: dict[str, str]) -> JSON:
    return {
        "id": resource_id + SUFFIX,
        "name": "default",
        "type": "Microsoft.Resources/tags",
        "properties": {"tags": dict(tags)},
    }


def routes() -> list[Route]:
    def find(request: Request, state: State, resource_type: str) -> tuple[str, dict[str, str], object]:
        require_resource_group(request, state)
        resource_id = request.path[: -len(SUFFIX)]
        found = state.tagged(resource_id)
        if found is None:
            name = resource_id.split(f"/{resource_type}/", 1)[-1]
            raise ArmError(404, "ResourceNotFound", f"The Resource '{resource_type}/{name}' was not found.")
        return found.id, found.tags, found

    def handlers(resource_type: str) -> tuple[Handler, Handler]:
        def get(request: Request, state: State) -> Response:
            with state.lock:
                resource_id, tags, _ = find(request, state, resource_type)
                return Response(200, _body(resource_id, tags))

        def patch(request: Request, state: State) -> Response:
            payload = request.json()
            operation = payload.get("operation") if isinstance(payload, dict) else None
            given = (payload.get("properties") or {}).get("tags") if isinstance(payload, dict) else None
            if operation not in ("Merge", "Replace", "Delete") or not isinstance(given, dict):
                raise ArmError(400, "InvalidRequestContent", "Expected an operation (Merge, Replace, Delete) and tags.")
            if not all(isinstance(v, str) and len(v) <= 256 for v in given.values()):
                raise ArmError(400, "InvalidTag", "Tag values must be strings of at most 256 characters.")
            with state.lock:
                resource_id, tags, resource = find(request, state, resource_type)
                if operation == "Merge":
                    new = {**tags, **given}
                elif operation == "Replace":
                    new = dict(given)
                else:  # Delete: the named tags, when their value matches (or is empty)
                    new = {k: v for k, v in tags.items() if not (k in given and given[k] in ("", v))}
                if len(new) > 50:
                    raise ArmError(400, "InvalidTag", "A resource can have at most 50 tags.")
                tags.clear()
                tags.update(new)
                if isinstance(resource, IpListAccount):
                    resource.version += 1
                return Response(200, _body(resource_id, tags))

        return get, patch

    found: list[Route] = []
    for resource_type in TAGGED_TYPES:
        get, patch = handlers(resource_type)
        for name in ("/{name}", SLOT) if resource_type == "Microsoft.Web/sites" else ("/{name}",):
            template = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + \
                       resource_type + name + SUFFIX  # fmt: skip
            found.append(route("GET", template, get, "Microsoft.Resources/tags/read"))
            found.append(route("PATCH", template, patch, "Microsoft.Resources/tags/write"))
    return found
