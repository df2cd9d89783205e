"""Format-2 entries of the adversarial cache (ikd-yolo before format 3): a whole PNG per attacked image, naming its
image and carrying the sha256 of its pixels in a `tEXt` chunk.

Read once, to convert a format-2 cache into format 3 instead of attacking every image again (`adv_cache`); written by
the benchmark to measure what format 3 saves (`benchmarks/bench_cache.py`) and by the tests that make an old cache.

Examples:
    >>> import numpy as np
    >>> rgb = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    >>> image, problem = decode_png_entry(encode_png_entry(rgb, "a1"), "a1", 4)
    >>> bool((image == rgb).all()), problem
    (True, None)
    >>> decode_png_entry(encode_png_entry(rgb, "a1"), "b2", 4)[1]
    'the entry of another image'
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import cv2
import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_KEYWORD = b"ikd-yolo"  # the tEXt chunk holding "image=<id> pixels=<sha256>"


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chunks_of(buf: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (type, data) chunks of a PNG file, or None if its layout or any chunk CRC is broken."""
    if not buf.startswith(_PNG_SIGNATURE):
        return None
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos < len(buf):
        if pos + 12 > len(buf):
            return None
        n, kind = struct.unpack(">I4s", buf[pos:pos + 8])
        data, crc = buf[pos + 8:pos + 8 + n], buf[pos + 8 + n:pos + 12 + n]
        if len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + data):
            return None
        chunks.append((kind, data))
        pos += 12 + n
    return chunks if chunks and chunks[-1][0] == b"IEND" else None


def _pixels_digest(bgr: np.ndarray) -> str:
    """sha256 of an 8-bit image's shape and pixels."""
    return hashlib.sha256(str(bgr.shape).encode() + np.ascontiguousarray(bgr).tobytes()).hexdigest()


def encode_png_entry(rgb: np.ndarray, image_id: str) -> bytes:
    """An RGB uint8 (H, W, C) image as a PNG file that names its image and carries its pixels' checksum."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"could not encode the adversarial image of {image_id} as PNG")
    png = buf.tobytes()
    text = _TEXT_KEYWORD + b"\0" + f"image={image_id} pixels={_pixels_digest(bgr)}".encode()
    return png[:-12] + _chunk(b"tEXt", text) + png[-12:]  # before IEND, the file's last 12 bytes


def decode_png_entry(buf: bytes, image_id: str, size: int) -> tuple[np.ndarray | None, str | None]:
    """(RGB uint8 image, None) for a sound entry of `image_id` at `size` px; (None, what is wrong) otherwise."""
    chunks = _chunks_of(buf)
    if chunks is None:
        return None, "damaged (not a PNG file with intact chunks)"
    texts = [d[len(_TEXT_KEYWORD) + 1:] for k, d in chunks if k == b"tEXt" and d.startswith(_TEXT_KEYWORD + b"\0")]
    if len(texts) != 1:
        return None, "without its checksum (not written by this version)"
    fields = dict(f.split("=", 1) for f in texts[0].decode("latin-1").split() if "=" in f)
    if fields.get("image") != image_id:
        return None, "the entry of another image"
    try:  # libpng would print its own line to stderr on a broken stream whose chunk CRCs were rewritten
        zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
    except zlib.error:
        return None, "damaged (its compressed pixels are broken)"
    bgr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None, "not decodable"
    if bgr.shape != (size, size, 3):
        return None, f"{bgr.shape[1]}x{bgr.shape[0]} px, not {size}x{size}"
    if _pixels_digest(bgr) != fields.get("pixels"):
        return None, "damaged (its pixels do not match their checksum)"
    return bgr[..., ::-1], None
