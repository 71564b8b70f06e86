"""URLs that may hold credentials (``nats://user:password@host``, ``postgresql://role:password@host``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***``, fit for logs, messages and run.json.

    Each comma-separated server of a NATS server list is redacted on its own."""
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a URL that cannot be parsed)"
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        return url
    if password is None:
        # nats://TOKEN@host: for NATS a user without a password is a token.
        return (
            urlunsplit(parts._replace(netloc=f"***@{hostinfo}")) if parts.scheme.startswith("nats") else url
        )
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
