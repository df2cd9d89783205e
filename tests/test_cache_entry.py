"""One entry of the adversarial cache (format 3): bit-exact through any difference, within a few percent of the
entropy of an attack's perturbation, and every way it can be wrong named."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from ikd_yolo.augment.cache_entry import MAGIC, decode_entry, encode_entry, entry_header
from ikd_yolo.augment.cache_format2 import encode_png_entry


def images(size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A clean image with saturated corners and its attacked copy: steps of 2 in an 8 ball, clipped to [0, 255],
    and a few pixels moved by odd amounts (more distinct differences than the palette holds)."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    clean[:4, :4], clean[-4:, -4:] = 0, 255  # a step past 0 or 255 is clipped (a difference of 0 mod 256)
    step = rng.choice([-8, -6, -2, 2, 6, 8], size=clean.shape)
    step[rng.random(clean.shape) < 0.02] = rng.choice([-7, -5, 1, 3], size=1)
    adv = (clean.astype(int) + step).clip(0, 255).astype(np.uint8)
    return clean, adv


def header_of(buf: bytes) -> dict:
    (n,) = struct.unpack(">I", buf[len(MAGIC):len(MAGIC) + 4])
    return json.loads(buf[len(MAGIC) + 4:len(MAGIC) + 4 + n])


def with_header(buf: bytes, **changes) -> bytes:
    """`buf` with its header's fields changed (the payload as it was)."""
    (n,) = struct.unpack(">I", buf[len(MAGIC):len(MAGIC) + 4])
    text = json.dumps({**header_of(buf), **changes}, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(text)) + text + buf[len(MAGIC) + 4 + n:]


def test_entry_is_bit_exact_with_escapes_clipping_and_wrapping():
    clean, adv = images()
    buf = encode_entry(adv, clean, "id")
    image, problem = decode_entry(buf, clean, "id", 32)
    assert problem is None and image.dtype == np.uint8 and np.array_equal(image, adv)
    header = header_of(buf)
    assert len(header["palette"]) == 6 and header["escapes"] > 0  # ten distinct differences: some pixels escaped
    same = decode_entry(encode_entry(clean, clean, "id"), clean, "id", 32)[0]  # an attack that changed nothing
    assert np.array_equal(same, clean)


def test_entry_is_within_a_few_percent_of_the_perturbations_entropy():
    # an attack of 2 steps of 2: each difference -4, 0 or +4 (the measured shares at 640 px: 0.36, 0.28, 0.36);
    # independent noise, so no coder can go below its entropy; Huffman codes of the pixels' 27 triples come within
    # 2% of it, where codes of single differences (1, 2 and 2 bits long) would be 4.5% above it
    rng = np.random.default_rng(1)
    clean = np.full((256, 256, 3), 128, np.uint8)
    p = np.array([0.36, 0.28, 0.36])
    adv = (clean + rng.choice([-4, 0, 4], size=clean.shape, p=p)).astype(np.uint8)
    entropy_bytes = -(p * np.log2(p)).sum() * adv.size / 8
    buf = encode_entry(adv, clean, "id")
    assert len(buf) <= 1.03 * entropy_bytes + 512  # + the header


@pytest.mark.parametrize("damage, says", [
    (lambda b: b[:-10], "damaged ("),  # cut short: "<n> of its <m> payload bytes"
    (lambda b: b[:-40] + bytes(x ^ 0x5A for x in b[-40:-30]) + b[-30:],
     "damaged (its bytes do not match their checksum)"),
    (lambda b: b[:len(MAGIC) + 10] + b"\xff" * 20 + b[len(MAGIC) + 30:], "damaged (its header is broken)"),
    (lambda b: with_header(b, pixels="0" * 64), "damaged (its pixels do not match their checksum)"),
    (lambda b: with_header(b, image="other"), "the entry of another image"),
    (lambda b: with_header(b, size=[16, 16]), "16x16 px, not 32x32"),
    (lambda b: encode_png_entry(images()[1], "id"), "not an entry of this version (format 3)"),
])
def test_every_damage_is_named(damage, says):
    clean, adv = images()
    image, problem = decode_entry(damage(encode_entry(adv, clean, "id")), clean, "id", 32)
    assert image is None and problem.startswith(says)


def test_file_check_needs_no_image_and_the_full_check_names_another_clean_image():
    clean, adv = images()
    buf = encode_entry(adv, clean, "id")
    header, problem = entry_header(buf, "id", 32)
    assert problem is None and header["clean"] != header["pixels"]
    other = clean.copy()
    other[5, 5, 1] ^= 1  # one bit of the clean image changed (an image that letterboxes differently)
    image, problem = decode_entry(buf, other, "id", 32)
    assert image is None and problem.startswith("made from another clean image")
