"""The files users copy from examples/ work: the config loads, the roles cover what the tool does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allowlist.config import load_scope
from allowlist.emulator import Emulator
from tests.cli_helpers import cli, write_config
from tests.conftest import SQL1
from tests.test_backends import ALL, backend_estate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_example_config_loads() -> None:
    scope = load_scope(EXAMPLES / "allowlist.toml")
    assert [b.name for b in scope.blocks] == ["shop", "reports"]
    assert scope.settings.max_delete_percent == 30


@pytest.fixture
def estate() -> dict[str, Any]:
    return backend_estate()


def test_example_roles_cover_every_operation_the_tool_performs(
    cli_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    granted = set()
    for role in (EXAMPLES / "roles").glob("*.json"):
        granted |= {a.lower() for a in json.loads(role.read_text())["Actions"]}
    targets = [SQL1, *ALL.values()]
    config = write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": targets}], poll_interval=0)
    from allowlist.emulator.state import FirewallRule

    cli_env.state.servers[SQL1.lower()].rules["allowlist-5.5.5.5"] = FirewallRule(
        "allowlist-5.5.5.5", "5.5.5.5", "5.5.5.5"
    )
    assert cli(capsys, "ips").code == 0
    assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
    used = {r.action.lower() for r in cli_env.requests}
    assert {"microsoft.sql/servers/firewallrules/write", "microsoft.sql/servers/firewallrules/delete"} <= used
    assert {
        "microsoft.dbforpostgresql/locations/azureasyncoperation/read",
        "microsoft.storage/storageaccounts/write",
    } <= used
    assert used <= granted, f"not granted by examples/roles: {sorted(used - granted)}"


@pytest.mark.parametrize("name", ["github-actions.yml", "azure-pipelines.yml"])
def test_pipeline_examples_use_real_commands(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    assert "allowlist apply" in text and "allowlist plan" in text


def test_example_roles_are_built_from_the_back_end_descriptors() -> None:
    from allowlist.roles import role_definitions

    for name, role in role_definitions().items():
        assert json.loads((EXAMPLES / "roles" / name).read_text()) == role, f"regenerate examples/roles/{name}"
