"""allowlist: keep database firewalls in step with the addresses Azure App Service apps connect from."""

__version__ = "0.1.0"
