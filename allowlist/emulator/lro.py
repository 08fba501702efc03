"""Long-running operations as ARM runs them: 202 with Azure-AsyncOperation and Location headers, a
status resource that reads InProgress and then Succeeded or Failed, and the change applied to the
state only when the operation succeeds (a failed operation changes nothing).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from allowlist.emulator.http import ArmError, Request, Response, Route, route
from allowlist.emulator.state import State

JSON = dict[str, Any]


@dataclass
class Operation:
    id: str
    namespace: str
    location: str
    complete: Callable[[], JSON | None]  # applies the change; returns the final resource, if any
    polls_left: int
    fail: bool
    resource: str = ""  # the server it changes: one operation at a time per server
    due: float | None = None  # finishes by itself at this time.monotonic(), polled or not
    status: str = "InProgress"
    result: JSON | None = None


@dataclass
class Operations:
    """Every operation one emulator started; `polls` status reads before one finishes."""

    polls: int = 2
    finish_after: float | None = None  # seconds: operations also finish on the service's own clock
    operations: dict[str, Operation] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def start(
        self,
        request: Request,
        namespace: str,
        location: str,
        complete: Callable[[], JSON | None],
        fail: bool,
        resource: str = "",
    ) -> Response:
        busy = [o for o in self.operations.values() if o.status == "InProgress" and resource and o.resource == resource]
        if busy:  # as the services do: one firewall operation at a time per server
            raise ArmError(
                409,
                "ServerBusy",
                f"Another operation ({busy[0].id}) is in progress on the server. Retry after it finishes.",
            )
        op_id = f"{next(self._ids):08d}-0000-4000-8000-00000000a51c"
        due = None if self.finish_after is None else time.monotonic() + self.finish_after
        self.operations[op_id] = Operation(op_id, namespace, location, complete, self.polls, fail, resource, due)
        subscription = request.params["subscriptionId"]
        base = f"{request.base_url}/subscriptions/{subscription}/providers/{namespace}/locations/{location}"
        version = request.query.get("api-version", "")
        return Response(
            202,
            None,
            {
                "Azure-AsyncOperation": f"{base}/azureAsyncOperation/{op_id}?api-version={version}",
                "Location": f"{base}/operationResults/{op_id}?api-version={version}",
            },
        )

    def _advance(self, op_id: str, state: State) -> Operation:
        op = self.operations.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        if op.status == "InProgress":
            op.polls_left -= 1
            if op.polls_left <= 0:
                self._finish(op, state)
        return op

    def _finish(self, op: Operation, state: State) -> None:
        if op.fail:
            op.status = "Failed"
        else:
            with state.lock:
                op.result = op.complete()
            op.status = "Succeeded"

    def settle(self, state: State) -> None:
        """Finish every operation whose time has come, whether or not anyone polls it (a killed client)."""
        now = time.monotonic()
        for op in list(self.operations.values()):
            if op.status == "InProgress" and op.due is not None and op.due <= now:
                self._finish(op, state)

    def _status_body(self, op: Operation, request: Request) -> JSON:
        body: JSON = {
            "id": f"/subscriptions/{request.params['subscriptionId']}/providers/{op.namespace}/locations/{op.location}"
            f"/azureAsyncOperation/{op.id}",
            "name": op.id,
            "status": op.status,
            "startTime": "2026-11-01T09:00:00.000Z",
            "percentComplete": 100 if op.status != "InProgress" else 50,
        }
        if op.status != "InProgress":
            body["endTime"] = "2026-11-01T09:00:05.000Z"
        if op.status == "Failed":
            body["error"] = {
                "code": "InternalServerError",
                "message": "An unexpected error occurred while processing the request. Please try again.",
            }
        return body

    def routes(self, namespace: str) -> list[Route]:
        base = "/subscriptions/{subscriptionId}/providers/" + namespace + "/locations/{location}"

        def status(request: Request, state: State) -> Response:
            return Response(200, self._status_body(self._advance(request.params["operationId"], state), request))

        def result(request: Request, state: State) -> Response:
            op = self._advance(request.params["operationId"], state)
            if op.status == "InProgress":
                return Response(202, None, {"Location": f"{request.base_url}{request.path}?api-version="
                                                        f"{request.query.get('api-version', '')}"})  # fmt: skip
            if op.status == "Failed":
                return Response(200, self._status_body(op, request))
            return Response(200, op.result) if op.result is not None else Response(204)

        return [
            route(
                "GET",
                base + "/azureAsyncOperation/{operationId}",
                status,
                f"{namespace}/locations/azureAsyncOperation/read",
            ),
            route(
                "GET", base + "/operationResults/{operationId}", result, f"{namespace}/locations/operationResults/read"
            ),
        ]
