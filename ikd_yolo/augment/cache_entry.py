"""One entry of the adversarial cache (format 3): what the attack changed in one letterboxed image, losslessly.

The attack moves each pixel a few steps inside the adv_eps ball around the clean image, so an entry stores the
difference to the clean letterboxed image, not the image: each channel's difference (mod 256) is one of a handful of
values, so a pixel's three differences become one byte-sized symbol, an index into the entry's own `PALETTE` values
cubed, and zlib codes the symbols with Huffman codes alone (LZ matching finds nothing in the attack's sign noise and
costs 100x the time). The rare pixel with a difference outside the palette is an escape symbol, its three differences
stored after the symbols. Reading adds the differences back to the clean image, mod 256: bit-exact.

File layout: MAGIC, the JSON header's length (4 bytes, big-endian), the header, then the payload (the symbols' zlib
stream, then the escapes'). The header names the image (its content id), the size, the palette, the payload's
sha256, and the sha256 of the clean and of the adversarial pixels. `entry_header` checks what the file alone can
prove (cheap: no image is read); `decode_entry` also checks the clean image it is given and the reconstructed pixels.
Each says in a few words what is wrong otherwise.

Examples:
    >>> import numpy as np
    >>> clean = np.full((4, 4, 3), 250, np.uint8)
    >>> adv = (clean.astype(int) + np.resize([-4, 0, 4], (4, 4, 3))).clip(0, 255).astype(np.uint8)
    >>> image, problem = decode_entry(encode_entry(adv, clean, "a1"), clean, "a1", 4)
    >>> bool((image == adv).all()), problem
    (True, None)
    >>> decode_entry(encode_entry(adv, clean, "a1"), clean, "b2", 4)[1]
    'the entry of another image'
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"IKDADV3\n"  # format 3; a later format changes the digit
PALETTE = 6  # differences per entry coded in the symbols: 6 ** 3 = 216 symbols fit a byte beside ESCAPE
ESCAPE = 255  # the symbol of a pixel whose differences are stored in full


def pixels_digest(rgb: np.ndarray) -> str:
    """sha256 of an 8-bit image's shape and pixels."""
    return hashlib.sha256(str(rgb.shape).encode() + np.ascontiguousarray(rgb).tobytes()).hexdigest()


def _huffman(data: bytes) -> bytes:
    """zlib stream of `data` coded with Huffman codes only (the adler32 of zlib's wrapper checks it on reading)."""
    coder = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    return coder.compress(data) + coder.flush()


def encode_entry(adv: np.ndarray, clean: np.ndarray, image_id: str) -> bytes:
    """The entry of an RGB uint8 (H, W, 3) adversarial image `adv` made from the clean image `clean` (same shape)."""
    diff = adv - clean  # uint8: mod 256, so adding it back to `clean` wraps to `adv` exactly
    counts = np.bincount(diff.ravel(), minlength=256)
    palette = np.argsort(-counts, kind="stable")[:min(PALETTE, np.count_nonzero(counts))].astype(np.uint8)
    index = np.full(256, PALETTE, np.uint8)
    index[palette] = np.arange(len(palette), dtype=np.uint8)
    ranks = index[diff].astype(np.int32)
    symbols = ranks[..., 0] * PALETTE ** 2 + ranks[..., 1] * PALETTE + ranks[..., 2]
    escaped = (ranks == PALETTE).any(-1)
    symbols[escaped] = ESCAPE
    payload = [_huffman(symbols.astype(np.uint8).tobytes()), zlib.compress(diff[escaped].tobytes(), 9)]
    header = {"image": image_id, "size": list(adv.shape[:2]), "palette": palette.tolist(),
              "symbols": len(payload[0]), "escapes": len(payload[1]),
              "payload": hashlib.sha256(b"".join(payload)).hexdigest(),
              "clean": pixels_digest(clean), "pixels": pixels_digest(adv)}
    text = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(text)) + text + b"".join(payload)


def entry_header(buf: bytes, image_id: str, size: int) -> tuple[dict[str, Any] | None, str | None]:
    """(header, None) if `buf` is a whole entry of `image_id` at `size` px as written; (None, what is wrong)."""
    if not buf.startswith(MAGIC):
        return None, "not an entry of this version (format 3)"
    start = len(MAGIC) + 4
    try:
        (n,) = struct.unpack(">I", buf[len(MAGIC):start])
        header = json.loads(buf[start:start + n])
        image, shape, payload = header["image"], header["size"], header["symbols"] + header["escapes"]
    except (struct.error, ValueError, KeyError, TypeError):
        return None, "damaged (its header is broken)"
    if image != image_id:
        return None, "the entry of another image"
    if shape != [size, size]:
        return None, f"{shape[1]}x{shape[0]} px, not {size}x{size}"
    body = buf[start + n:]
    if len(body) != payload:
        return None, f"damaged ({len(body)} of its {payload} payload bytes)"
    if hashlib.sha256(body).hexdigest() != header["payload"]:
        return None, "damaged (its bytes do not match their checksum)"
    header["offset"] = start + n
    return header, None


def decode_entry(buf: bytes, clean: np.ndarray, image_id: str, size: int) -> tuple[np.ndarray | None, str | None]:
    """(RGB uint8 adversarial image, None) for a sound entry of `image_id` at `size` px made from `clean`, the
    image's clean letterboxed pixels; (None, what is wrong) otherwise."""
    header, problem = entry_header(buf, image_id, size)
    if header is None:
        return None, problem
    if pixels_digest(clean) != header["clean"]:
        return None, ("made from another clean image (the image letterboxes differently now: another Ultralytics or "
                      "OpenCV?)")
    start, split = header["offset"], header["offset"] + header["symbols"]
    try:
        symbols = np.frombuffer(zlib.decompress(buf[start:split]), np.uint8).reshape(size, size).astype(np.int32)
        escapes = np.frombuffer(zlib.decompress(buf[split:]), np.uint8).reshape(-1, 3)
        palette = np.zeros(PALETTE, np.uint8)
        palette[:len(header["palette"])] = header["palette"]
        ranks = np.stack([symbols // PALETTE ** 2, symbols // PALETTE % PALETTE, symbols % PALETTE], -1)
        diff = palette[ranks.clip(max=PALETTE - 1)]
        diff[symbols == ESCAPE] = escapes
    except (zlib.error, ValueError):  # a payload that matches its checksum but was not written by encode_entry
        return None, "not decodable"
    adv = clean + diff
    if pixels_digest(adv) != header["pixels"]:
        return None, "damaged (its pixels do not match their checksum)"
    return adv, None
