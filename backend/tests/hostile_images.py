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


def text_bomb_png(chunks: int = 64, chunk_bytes: int = 1024 * 1024, after_pixels: bool = False) -> bytes:
    """A legal 28x28 drawing that carries ``chunks`` zTXt chunks of ``chunk_bytes`` each once
    inflated (Pillow's default limits: 1 MiB a chunk, 64 MiB an image): about 1 KB a chunk."""
    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    idat = zlib.compress(
        b"".join(b"\x00" + bytes(28) for _ in range(14)) + b"".join(b"\x00" + b"\xff" * 28 for _ in range(14))
    )
    text = b"".join(
        _chunk(b"zTXt", b"Comment%d\x00\x00" % index + zlib.compress(b" " * chunk_bytes, 9)) for index in range(chunks)
    )
    before, after = (b"", text) if after_pixels else (text, b"")
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + before + _chunk(b"IDAT", idat) + after + _chunk(b"IEND", b"")
    )
