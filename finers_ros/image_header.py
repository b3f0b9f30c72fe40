"""
The pixel size a compressed image's header declares, read without decoding its pixels.

Why: a compressed frame of a few hundred kB can declare 20000x12000 pixels (a PNG of zeros);
decoding it first costs seconds and gigabytes. PNG (the ``IHDR`` chunk) and JPEG (the
start-of-frame segment), the formats image_transport's compressed plugin sends, are read
here directly; other formats through Pillow, which reads only the header on open.
"""

from __future__ import annotations

import io
import struct
from typing import Optional, Tuple

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): all 0xC0-0xCF but DHT
# (0xC4), JPG (0xC8) and DAC (0xCC); each segment is length (2 bytes), precision, height, width
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_NO_LENGTH = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, SOS's peers, TEM


class HeaderTooLarge(ValueError):
    """The header declares more pixels than the header reader itself accepts (Pillow's)."""


def declared_size(data) -> Optional[Tuple[int, int]]:
    """
    Return ``(width, height)`` the image header in ``data`` (bytes-like) declares, or None.

    None: a format no reader here knows, or a header cut short (the decoder then says why).
    Raises ``HeaderTooLarge`` where Pillow refuses to open a header of that many pixels.
    """
    if data[:8] == PNG_SIGNATURE:
        return _png_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return _pillow_size(data)


def _png_size(data: bytes) -> Optional[Tuple[int, int]]:
    """Read the first chunk, IHDR: width, height as big-endian uint32."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """Walk the segments up to the first start-of-frame."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_NO_LENGTH:
            at += 2
            continue
        if marker in JPEG_SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if marker == 0xDA:  # scan data before any frame header: not a JPEG to trust
            return None
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return None


def _pillow_size(data: bytes) -> Optional[Tuple[int, int]]:
    import warnings

    import PIL.Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data)) as image:
                return image.size
    except PIL.Image.DecompressionBombError:
        raise HeaderTooLarge(
            f"more than {2 * PIL.Image.MAX_IMAGE_PIXELS} pixels") from None
    except Exception:  # a format Pillow does not know, or a broken header
        return None
