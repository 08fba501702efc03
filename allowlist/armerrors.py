"""Turning SDK and transport errors into one line each. Light: the SDK is imported only when needed."""

from __future__ import annotations

from allowlist.errors import TOKEN_ENV, AllowlistError, AuthError


def describe(exc: Exception) -> str:
    """One line for an SDK error: status, ARM error code and message; never headers or tokens."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
        return f"could not get a token: {_first_line(str(exc.message))}"
    if isinstance(exc, HttpResponseError):
        code = exc.error.code if exc.error is not None and exc.error.code else (exc.reason or "")
        message = exc.error.message if exc.error is not None and exc.error.message else str(exc.message)
        return f"{exc.status_code} {code}: {_first_line(message)}".strip()
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


class EndpointError(AllowlistError):
    """The ARM endpoint cannot be reached or trusted: retrying cannot help, so the run stops at once."""


# What a wrong endpoint or CA bundle looks like from below the SDK, whichever layer wrapped it.
_UNREACHABLE = {
    "certificate": ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "SSLError", "SSL: "),
    "name": ("Name or service not known", "nodename nor servname", "NameResolutionError", "getaddrinfo failed",
             "Temporary failure in name resolution", "No address associated"),
    "refused": ("Connection refused", "ConnectionRefusedError", "actively refused"),
}  # fmt: skip


def unreachable(exc: BaseException) -> str | None:
    """Why no retry can help ("certificate", "name", "refused"), or None for errors worth retrying."""
    import socket
    import ssl

    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    text = []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError | ssl.SSLError):
            return "certificate"
        if isinstance(current, socket.gaierror):
            return "name"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        text.append(f"{type(current).__name__}: {current}")
        stack += [e for e in (current.__cause__, current.__context__, getattr(current, "inner_exception", None))
                  if isinstance(e, BaseException)]  # fmt: skip
        stack += [a for a in current.args if isinstance(a, BaseException)]
    joined = " ".join(text)
    return next((why for why, marks in _UNREACHABLE.items() if any(m in joined for m in marks)), None)


_HINTS = {
    "certificate": "the endpoint's TLS certificate is not trusted (for the emulator, set REQUESTS_CA_BUNDLE to "
    "the CA bundle it printed)",
    "name": "the endpoint's host name does not resolve (check --arm-endpoint / ALLOWLIST_ARM_ENDPOINT)",
    "refused": "nothing is listening at the endpoint (check --arm-endpoint / ALLOWLIST_ARM_ENDPOINT; is the "
    "emulator running?)",
}


def raise_if_fatal(exc: Exception) -> None:
    """Errors that no other part of the run could escape stop it at once: ours (a timeout), a 401 or a
    credential without a token, and an endpoint that cannot be reached or trusted."""
    if isinstance(exc, AllowlistError):
        raise exc
    raise_if_auth(exc)
    why = unreachable(exc)
    if why is not None:
        raise EndpointError(f"cannot reach ARM: {_HINTS[why]}; {describe(exc)}") from exc


def raise_if_auth(exc: Exception) -> None:
    """A 401 or a credential that cannot get a token stops the whole run: nothing else would work."""
    from azure.core.exceptions import ClientAuthenticationError

    if isinstance(exc, ClientAuthenticationError):
        hint = (
            f" (sign in with `az login`, use a managed or workload identity, set AZURE_CLIENT_ID and friends, or "
            f"give a token in {TOKEN_ENV})"
            if exc.status_code is None
            else ""
        )
        raise AuthError(f"authentication failed: {describe(exc)}{hint}") from exc
