"""MySQL flexible servers: named IPv4 rules written by long-running operations."""

from __future__ import annotations

from allowlist.targets.named import flexible_backend

BACKEND = flexible_backend(
    kind="mysql",
    namespace="Microsoft.DBforMySQL",
    label="MySQL flexible server",
    client=("azure.mgmt.mysqlflexibleservers", "MySQLManagementClient"),
    api_version="2023-12-30",
)
