"""Meta signs every delivery: `X-Hub-Signature-256: sha256=<hex HMAC(app secret, raw body)>`."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: bytes, body: bytes) -> str:
    """The header value Meta would send for `body` (used by the simulator and tests)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secrets: list[bytes], body: bytes, header: str | None) -> bool:
    """True if any configured secret signed exactly these bytes.

    Several secrets are accepted so an app secret can be rotated without
    dropping deliveries; each comparison is constant-time.
    """
    if not header or not header.startswith("sha256="):
        return False
    try:
        given = bytes.fromhex(header[7:].strip())
    except ValueError:
        return False
    ok = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        ok |= hmac.compare_digest(expected, given)
    return ok
