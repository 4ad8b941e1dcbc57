"""Small files that decode into very large images (decompression bombs), built byte by byte.

Pillow cannot write a 1-bit palette PNG with transparency or a 16-bit RGBA PNG of our
choosing, so the chunks are written here: zlib squeezes millions of identical rows into
a few kilobytes.
"""

from __future__ import annotations

import base64
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, bit_depth: int, colour_type: int, row_bytes: int, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * row_bytes  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def palette_bomb_png(side: int = 4096) -> bytes:
    """1-bit palette with a transparent colour: about 2 KB at 4096x4096."""
    palette = _chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff") + _chunk(b"tRNS", b"\x00")
    return _png(side, side, 1, 3, side // 8, palette)


def rgba16_bomb_png(side: int = 4096) -> bytes:
    """16-bit RGBA (8 bytes a pixel before decoding): about 130 KB at 4096x4096."""
    return _png(side, side, 16, 6, side * 8)


def as_base64(data: bytes) -> str:
    return base64.b64encode(data).decode()
