"""Room and operator secrets: issued once, stored only as a hash, compared in constant time.

Tokens are 256-bit random strings, so a plain SHA-256 is enough to make a
stolen database useless (no dictionary to try); a slow password hash would
only cost CPU on every agent connection.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)
