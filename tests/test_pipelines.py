"""The pipeline examples, run: every shell step of examples/github-actions.yml and examples/azure-pipelines.yml
executes as the CI service would run it, against the emulator serving the demo estate, with the real
`allowlist` command. Only what cannot run here is stood in for: the actions that check out, set up Python
and log in (the test process already did), and the GitHub CLI (a stub that records the issue calls)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from allowlist.emulator import Emulator
from tests.test_audit import DEMO_CONFIG, demo  # noqa: F401 (the fixture)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GH_STUB = """#!/usr/bin/env bash
# Records each call; `issue list` answers with the open drift issue, once `issue create` has made one.
echo "$*" >> "$GH_LOG"
case "$1 $2" in
  "issue list") cat "$GH_OPEN" 2>/dev/null || true ;;
  "issue create") echo 7 > "$GH_OPEN" ;;
esac
"""


@pytest.fixture
def workspace(demo: Emulator, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """A checkout holding the config, a PATH with `allowlist` and the gh stub, and the emulator's variables."""
    # The demo config's settings and its "reports" block (a SQL server and a Storage account): quick writes.
    text = DEMO_CONFIG.read_text()
    reports = text[text.index('[[sync]]\nname = "reports"') :].split("\n\n")[0]
    (tmp_path / "allowlist.toml").write_text(text[: text.index("[[sync]]")] + reports + "\n")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "gh").write_text(GH_STUB)
    (stubs / "gh").chmod(0o755)
    return {
        "PATH": f"{stubs}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ALLOWLIST_ARM_ENDPOINT": os.environ["ALLOWLIST_ARM_ENDPOINT"],
        "REQUESTS_CA_BUNDLE": os.environ["REQUESTS_CA_BUNDLE"],
        "ALLOWLIST_ACCESS_TOKEN": "pipeline-token",
        "GH_LOG": str(tmp_path / "gh.log"),
        "GH_OPEN": str(tmp_path / "gh-open-issue"),
    }


def an_hour_passes(emu: Emulator) -> None:
    """The next scheduled run: the lease tags the last apply left say it wrote an hour ago (a run that began
    reading within a clock skew of another's write would rightly hold back its deletes)."""
    with emu.state.lock:
        holders = [*emu.state.servers.values(), *emu.state.accounts.values(), *emu.state.sites.values()]
        for tags in (h.tags for h in holders):
            for key, value in tags.items():
                run_id, _, expiry = value.partition(" ")
                if key.endswith("lease") and expiry:
                    tags[key] = f"{run_id} {float(expiry) - 3600}"


def run_github_workflow(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """The sync job's steps in order, as a runner does: `bash -e` per `run`, `if` on step outputs."""
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    outputs: dict[str, dict[str, str]] = {}
    summary, ran = cwd / "summary.md", []
    summary.write_text("")
    for step in workflow["jobs"]["sync"]["steps"]:
        if "uses" in step or step.get("name") == "Install allowlist":
            continue  # checkout, setup-python, azure/login, pip install: this test process is all of them
        condition = step.get("if")
        if condition is not None:
            m = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+) == '([^']*)'", condition)
            assert m is not None, f"the test cannot evaluate: {condition}"
            if outputs.get(m[1], {}).get(m[2]) != m[3]:
                continue
        output = cwd / "output.txt"
        output.write_text("")
        step_env = {k: "secret" if "${{" in str(v) else str(v) for k, v in (step.get("env") or {}).items()}
        files = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, capture_output=True, text=True,
                              env={**env, **step_env, **files})  # fmt: skip
        assert done.returncode == 0, (step.get("name"), done.stdout[-3000:], done.stderr[-3000:])
        outputs[step.get("id", "")] = dict(line.split("=", 1) for line in output.read_text().splitlines())
        ran.append(step.get("name"))
    gh_log = Path(env["GH_LOG"])
    calls = gh_log.read_text().splitlines() if gh_log.exists() else []
    gh_log.unlink(missing_ok=True)
    return {"ran": ran, "summary": summary.read_text(), "gh": calls, "outputs": outputs}


def test_the_github_workflow_reports_drift_in_one_issue_and_applies(
    demo: Emulator,  # noqa: F811
    workspace: dict[str, str],
    tmp_path: Path,
) -> None:
    first = run_github_workflow(workspace, tmp_path)
    assert first["outputs"]["plan"]["exitcode"] == "2"
    assert first["ran"] == ["Plan", "Open or update the drift issue", "Apply the plan shown above"]
    assert "Plan: 9 to add, 0 to remove." in first["summary"]
    assert first["gh"][-1].startswith("issue create --title Database firewalls drifted from the apps")
    # In step now: nothing to report, nothing to apply.
    second = run_github_workflow(workspace, tmp_path)
    assert second["outputs"]["plan"]["exitcode"] == "0" and second["ran"] == ["Plan"] and second["gh"] == []
    assert "No changes" in second["summary"]
    # An app changes tier (new addresses): the same issue is updated, not a second one opened.
    web = next(s for s in demo.state.sites.values() if s.name == "reports-web")
    web.possible_outbound_ip_addresses += ",52.166.20.99"
    an_hour_passes(demo)
    third = run_github_workflow(workspace, tmp_path)
    assert third["outputs"]["plan"]["exitcode"] == "2"
    assert third["gh"][-1] == "issue comment 7 --body-file plan.md"
    an_hour_passes(demo)
    assert run_github_workflow(workspace, tmp_path)["outputs"]["plan"]["exitcode"] == "0"


def test_the_azure_pipeline_posts_a_summary_and_applies(
    demo: Emulator,  # noqa: F811
    workspace: dict[str, str],
    tmp_path: Path,
) -> None:
    pipeline = yaml.safe_load((EXAMPLES / "azure-pipelines.yml").read_text())

    def run() -> str:
        out = []
        for step in pipeline["steps"]:
            if step.get("task") == "AzureCLI@2":  # the service connection logs in; the token stands in here
                script = step["inputs"]["inlineScript"]
            elif step.get("displayName") == "Install allowlist" or step.get("task") == "UsePythonVersion@0":
                continue
            else:
                script = step["script"]
            done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=workspace, capture_output=True, text=True)
            assert done.returncode == 0, (done.stdout, done.stderr)
            out.append(done.stdout)
        return "".join(out)

    drifted = run()
    an_hour_passes(demo)
    assert f"##vso[task.uploadsummary]{tmp_path}/plan.md" in drifted
    assert "Plan: 9 to add, 0 to remove." in (tmp_path / "plan.md").read_text()
    assert "##vso" not in run()  # applied: in step now
