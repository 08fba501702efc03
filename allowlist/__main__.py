from allowlist.cli.start import entry

entry()
