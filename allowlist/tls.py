"""The TLS context every connection to ARM uses, made once per CA bundle: loading a bundle the size of
certifi's takes about 40 ms, and a run has two transports (the event loop's and the synchronous one)."""

from __future__ import annotations

import os
import ssl
from functools import lru_cache


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verification always on: the named bundle, else certifi's (as requests would use), else the system's."""
    if ca_bundle is None:
        try:
            import certifi

            ca_bundle = certifi.where()
        except ImportError:
            pass
    try:
        stamp = os.stat(ca_bundle).st_mtime_ns if ca_bundle is not None else 0
    except OSError:
        stamp = 0  # ssl says what is wrong with it
    return _context(ca_bundle, stamp)


@lru_cache(maxsize=8)
def _context(ca_bundle: str | None, stamp: int) -> ssl.SSLContext:
    """`stamp`: the bundle's modification time, so a bundle rewritten in place is loaded again."""
    return ssl.create_default_context(cafile=ca_bundle)
