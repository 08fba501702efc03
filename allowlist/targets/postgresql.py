"""PostgreSQL flexible servers: named IPv4 rules written by long-running operations."""

from __future__ import annotations

from allowlist.targets.named import flexible_backend

BACKEND = flexible_backend(
    kind="postgresql",
    namespace="Microsoft.DBforPostgreSQL",
    label="PostgreSQL flexible server",
    client=("azure.mgmt.postgresqlflexibleservers", "PostgreSQLManagementClient"),
    api_version="2024-08-01",
)
