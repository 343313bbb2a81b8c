"""Read dataset image and mask files safely: by bytes, with errors that name the file.

Why not ``cv2.imread(str(path))``: OpenCV (checked with 5.1) converts the path to a C++ string
without checking for failure, so a name holding bytes that are not valid UTF-8 (which Python
decodes to lone surrogates such as ``"\\udcff"``) crashes the process with a segmentation fault.
Reading the bytes with Python (which encodes any ``os.fsdecode``-d name back losslessly) and
decoding them with ``cv2.imdecode`` keeps every path away from OpenCV.

Corrupt files raise :class:`ValueError` naming the file. This includes a JPEG cut short (no
end-of-image marker after its first scan), which ``cv2.imread`` would return as a partly grey
image with only a libjpeg warning on stderr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import numpy.typing as npt

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable text: bytes that are not valid UTF-8 become ``\\xNN`` escapes."""
    raw = os.fspath(path)
    if isinstance(raw, str):
        raw = _fsencode_lossy(raw)
    return raw.decode("utf-8", "backslashreplace")


def _fsencode_lossy(text: str) -> bytes:
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate outside surrogateescape's range (e.g. from JSON)
        return text.encode("utf-8", "backslashreplace")


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class SkippedFile:
    """A file a loader left out: its path (printable, see :func:`display_path`) and why."""

    path: str
    reason: str


def bad_name_reason(path: Path) -> Optional[str]:
    """Why ``path.name`` cannot serve as a sample name, or None when it can.

    A name whose bytes are not valid UTF-8 cannot be written to JSON/terminals as text, turned
    into a referring expression, or (see the module docstring) passed to OpenCV.
    """
    if _is_text(path.name):
        return None
    return "file name is not valid UTF-8"


def read_file_bytes(path: str | os.PathLike, what: str = "image") -> bytes:
    """The bytes of ``path``; ValueError naming the file when it is missing, unreadable or empty."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise ValueError(f"cannot read {what} {display_path(path)}: file not found") from e
    except (OSError, UnicodeEncodeError) as e:
        raise ValueError(f"cannot read {what} {display_path(path)}: {type(e).__name__}: {e}") from e
    if not data:
        raise ValueError(f"cannot read {what} {display_path(path)}: the file is empty")
    return data


def _jpeg_truncated(data: bytes) -> bool:
    """True when a JPEG has no end-of-image marker after its first scan (i.e. it was cut short).

    Headers are walked by their lengths (so an EXIF thumbnail's own markers are skipped); inside
    entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so 0xFFD9
    there can only be the real end of image. Bytes after the marker are tolerated.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False  # not a layout we understand: leave the verdict to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _JPEG_SOS:
            return data.find(_JPEG_EOI, pos) < 0
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return True  # the headers run past the end of the file


def decode_image_bytes(data: bytes, flags: int, path: str | os.PathLike, what: str = "image") -> npt.NDArray[np.uint8]:
    """``cv2.imdecode`` of ``data`` (the contents of ``path``), ValueError naming the file if corrupt."""
    import cv2

    if data.startswith(_JPEG_SOI) and _jpeg_truncated(data):
        raise ValueError(f"cannot read {what} {display_path(path)}: truncated JPEG (no end-of-image marker)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        raise ValueError(f"cannot read {what} {display_path(path)}: corrupt file ({e})") from e
    if img is None:
        raise ValueError(f"cannot read {what} {display_path(path)}: corrupt file or unknown image format")
    return img


def read_rgb(path: str | os.PathLike) -> npt.NDArray[np.uint8]:
    """An image file as HxWx3 uint8 RGB."""
    import cv2

    img = decode_image_bytes(read_file_bytes(path, "image"), cv2.IMREAD_COLOR, path, "image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_unchanged(path: str | os.PathLike, what: str = "mask") -> npt.NDArray:
    """A file as stored (HxW or HxWxC, any depth): ``cv2.IMREAD_UNCHANGED``."""
    import cv2

    return decode_image_bytes(read_file_bytes(path, what), cv2.IMREAD_UNCHANGED, path, what)


def read_gray(path: str | os.PathLike) -> npt.NDArray[np.uint8]:
    """A mask file as HxW: the file itself if single-channel, else channel 0 (channel 2 of a BGRA file)."""
    img = read_unchanged(path, "mask")
    if img.ndim == 3:
        img = img[..., 0] if img.shape[2] != 4 else img[..., 2]
    return img
