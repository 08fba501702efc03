from allowlist.cli.main import entry

entry()
