"""Envelope encryption and blind indexes: the only module that imports cryptography.

Every person has a data key (AES-256-GCM). Data keys are stored wrapped by a
master key from `BOT_MASTER_KEYS`; fields are sealed with the data key and
bound to where they live (table/column/row) by associated data, so a
ciphertext copied to another row does not open. Destroying a data key makes
every copy of that person's fields unreadable (crypto-shredding).

Lookups never use plaintext: a blind index is an HMAC-SHA256 of a value under
`BOT_INDEX_KEY`, with a purpose prefix so the same number hashes differently
for different uses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.config import MasterKey
from bot.errors import BotError

_VERSION = 1
_NONCE = 12


class Index(StrEnum):
    """What a blind index is of: each purpose hashes the same value differently.
    The values are part of every stored index; never rename one."""

    PHONE = "phone"  # a number in E.164, with its plus
    BSUID = "bsuid"  # Meta's business-scoped user id, for people known without a number
    PSEUDONYM = "pseudonym"  # a contact's random id, as the audit log names them
    WAMID = "wamid"  # Meta's message ids (they encode the number)
    EVENT = "event"  # an inbox event's deduplication key
    STAFF = "staff_token"  # a support staff member's bearer token (`bot.support.staff`)


class CryptoError(BotError):
    """A value could not be opened: wrong key, wrong place, or tampered."""


@dataclass(frozen=True)
class WrappedKey:
    kid: str
    wrapped: bytes


@dataclass(frozen=True)
class DataKey:
    """An unwrapped data key and its id (the id is carried in every sealed field)."""

    key_id: str
    key: bytes


def _pack(key_id: str, nonce: bytes, ciphertext: bytes) -> bytes:
    kid = key_id.encode()
    return struct.pack("BB", _VERSION, len(kid)) + kid + nonce + ciphertext


def _unpack(blob: bytes) -> tuple[str, bytes, bytes]:
    if len(blob) < 2 + _NONCE + 16 or blob[0] != _VERSION:
        raise CryptoError("not a sealed value")
    kid_len = blob[1]
    kid = blob[2 : 2 + kid_len].decode(errors="replace")
    nonce = blob[2 + kid_len : 2 + kid_len + _NONCE]
    return kid, nonce, blob[2 + kid_len + _NONCE :]


def seal(data_key: DataKey, plaintext: bytes, where: str) -> bytes:
    """Encrypt `plaintext` for one place, e.g. "messages/body/<row id>"."""
    nonce = os.urandom(_NONCE)
    ct = AESGCM(data_key.key).encrypt(nonce, plaintext, where.encode())
    return _pack(data_key.key_id, nonce, ct)


def open_sealed(data_key: DataKey, blob: bytes, where: str) -> bytes:
    kid, nonce, ct = _unpack(blob)
    if kid != data_key.key_id:
        raise CryptoError("sealed with another data key")
    try:
        return AESGCM(data_key.key).decrypt(nonce, ct, where.encode())
    except InvalidTag:
        raise CryptoError("value does not open here (moved, tampered or wrong key)") from None


class Keyring:
    """Master keys (for wrapping data keys) and the index key (for blind indexes)."""

    def __init__(self, master_keys: list[MasterKey], index_key: bytes, cache_size: int = 4096):
        if not master_keys:
            raise ValueError("at least one master key is required")
        self._masters = {k.kid: k.key for k in master_keys}
        self.active_kid = master_keys[0].kid
        self._index_key = index_key
        self._cache: OrderedDict[str, DataKey] = OrderedDict()
        self._cache_size = cache_size

    # Blind indexes ----------------------------------------------------------

    def blind_index(self, purpose: Index, value: str) -> str:
        """Keyed hash for lookups and pseudonyms; hex so it fits an indexed text column."""
        msg = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()

    # Data keys --------------------------------------------------------------

    def new_data_key(self, key_id: str) -> tuple[DataKey, WrappedKey]:
        dk = DataKey(key_id=key_id, key=AESGCM.generate_key(bit_length=256))
        return dk, self.wrap(dk)

    def wrap(self, dk: DataKey) -> WrappedKey:
        nonce = os.urandom(_NONCE)
        ct = AESGCM(self._masters[self.active_kid]).encrypt(
            nonce, dk.key, b"datakey/" + dk.key_id.encode()
        )
        return WrappedKey(kid=self.active_kid, wrapped=nonce + ct)

    def cached(self, key_id: str) -> DataKey | None:
        """A data key unwrapped before and still in this process's cache."""
        found = self._cache.get(key_id)
        if found is not None:
            self._cache.move_to_end(key_id)
        return found

    def unwrap(self, key_id: str, wrapped: WrappedKey) -> DataKey:
        cached = self._cache.get(key_id)
        if cached is not None:
            self._cache.move_to_end(key_id)
            return cached
        dk = DataKey(key_id=key_id, key=self._open_wrapped(key_id, wrapped))
        self._cache[key_id] = dk
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return dk

    def rewrap(self, key_id: str, wrapped: WrappedKey) -> WrappedKey:
        """The same data key, wrapped under the active master key (key rotation).

        Sealed fields are untouched: only the small wrapped key changes.
        """
        return self.wrap(DataKey(key_id=key_id, key=self._open_wrapped(key_id, wrapped)))

    def _open_wrapped(self, key_id: str, wrapped: WrappedKey) -> bytes:
        master = self._masters.get(wrapped.kid)
        if master is None:
            raise CryptoError(f"master key {wrapped.kid!r} is not configured")
        nonce, ct = wrapped.wrapped[:_NONCE], wrapped.wrapped[_NONCE:]
        try:
            return AESGCM(master).decrypt(nonce, ct, b"datakey/" + key_id.encode())
        except InvalidTag:
            raise CryptoError("data key does not unwrap") from None

    def forget(self, key_id: str) -> None:
        """Drop a cached data key (after erasure the key must not linger in memory)."""
        self._cache.pop(key_id, None)
