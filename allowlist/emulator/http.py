"""Request, response, routing and paging shared by every emulated resource provider."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from allowlist.emulator.state import State

JSON = dict[str, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # https://127.0.0.1:PORT
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def json(self) -> Any:
        if not self.body:
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid: the body is empty.")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ArmError(Exception):
    """An ARM error answer: `{"error": {"code", "message"}}` with a status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, {"error": {"code": self.code, "message": self.message}}, self.headers)


def not_found(kind: str, name: str, resource_group: str | None = None) -> ArmError:
    where = f" under resource group '{resource_group}'" if resource_group else ""
    return ArmError(404, "ResourceNotFound", f"The Resource '{kind}/{name}'{where} was not found.")


Handler = Callable[[Request, State], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    action: str  # the RBAC action it needs, named in AuthorizationFailed answers
    depth: int = 0  # path segments: a path is only tried against routes of its own depth


SEGMENT = r"[^/]+"


def route(method: str, template: str, handler: Handler, action: str) -> Route:
    """`template` uses {name} placeholders for path segments; matching ignores case, as ARM does."""
    regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>{SEGMENT})", template)
    depth = template.rstrip("/").count("/")
    return Route(method, re.compile(f"^{regex}/?$", re.IGNORECASE), handler, action, depth)


@dataclass
class Router:
    # By depth: trying every route's pattern on every request was the emulator's largest cost per write.
    by_depth: dict[int, list[Route]] = field(default_factory=dict)

    def add(self, routes: Sequence[Route]) -> None:
        for r in routes:
            self.by_depth.setdefault(r.depth, []).append(r)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for candidate in self.by_depth.get(path.rstrip("/").count("/"), ()):
            m = candidate.pattern.match(path)
            if m is None:
                continue
            path_matched = True
            if candidate.method == method:
                return candidate, m.groupdict()
        if path_matched:
            raise ArmError(405, "MethodNotAllowed", f"The requested method '{method}' is not allowed for '{path}'.")
        raise ArmError(404, "InvalidResourceType", f"No emulated resource type matches the path '{path}'.")


def page(request: Request, items: Sequence[JSON], page_size: int) -> Response:
    """One page of a list, with an absolute nextLink on the emulator's own host, as ARM pages."""
    try:
        skip = int(request.query.get("$skiptoken", "0"))
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken", "The $skiptoken is not valid.") from exc
    chunk = list(items[skip : skip + page_size])
    body: JSON = {"value": chunk}
    if skip + page_size < len(items):
        # The next page lists the same collection: every query parameter but the token carries over.
        query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(skip + page_size)
        body["nextLink"] = f"{request.base_url}{quote(request.path)}?{urlencode(query, safe='$')}"
    return Response(200, body)
