"""Reading images without being fooled: missing, empty, truncated and non-image files are errors, not grey pictures.

OpenCV decodes a JPEG cut in half into a picture whose missing part is grey, saying only "Premature end of
JPEG file" on stderr; ``read_image`` checks the file's end marker first (JPEG ``FFD9``, PNG ``IEND``) and
raises ``ImageError`` naming the file and what is wrong with it. ``check_images`` scans many files in
parallel (the pre-flight ``python main.py --check``).

Training crops need less than the whole picture, and ``decode_image`` can skip work (``read_image_bytes``
then ``decode_image`` is ``read_image``, the checks included):

- ``rows``: only the top rows of a baseline JPEG. The height in the frame header (SOF) is lowered to a
  whole number of MCU rows, so libjpeg stops Huffman-decoding there; the rows it returns are those of the
  full decode, bit for bit (one extra MCU row is kept where chroma is subsampled: its upsampling looks one
  row down). libjpeg then warns of the "extraneous bytes" it skips; that warning is kept off stderr.
- ``reduce`` 2, 4 or 8: libjpeg's DCT scaling (``cv2.IMREAD_REDUCED_COLOR_*``), each pixel the mean of a
  ``reduce`` x ``reduce`` block: decoded pixel ``i`` is centred on full-size pixel ``reduce * i + (reduce - 1) / 2``.
"""
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
TAIL = 2048  # bytes searched for the end marker (some cameras append a little data after it)
# OpenCV >= 4.10 decodes straight to RGB (the same pixels as BGR + cvtColor, without the extra pass).
_COLOR_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


class ImageError(RuntimeError):
    """An image file is missing, empty, truncated or not an image."""


def _problem(data):
    """What is wrong with the bytes of an image file, or None."""
    if data.size == 0:
        return "empty (0 bytes)"
    head, tail = data[:8].tobytes(), data[-TAIL:].tobytes()
    if head.startswith(JPEG_START) and JPEG_END not in tail:
        return f"a truncated JPEG ({data.size} bytes, no end-of-image marker)"
    if head.startswith(PNG_START) and PNG_END not in tail[-64:]:
        return f"a truncated PNG ({data.size} bytes, no IEND chunk)"
    return None


def _where(path, image_id):
    return f"image {path}" + (f" (image id {image_id})" if image_id is not None else "")


def read_image_bytes(path, image_id=None):
    """The bytes of the image file at ``path`` (uint8 array), checked: ``ImageError`` when it is missing, empty
    or a truncated JPEG / PNG, naming the file (and ``image_id``)."""
    where = _where(path, image_id)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise ImageError(f"{where} is missing" if not os.path.exists(path) else f"{where} cannot be read: {e}") \
            from None
    problem = _problem(data)
    if problem:
        raise ImageError(f"{where} is {problem}")
    return data


class JpegHeader(NamedTuple):
    """What ``decode_image`` needs of a JPEG's frame header (``jpeg_header``)."""
    width: int
    height: int
    mcu_height: int  # rows of one MCU: 8 x the largest vertical sampling factor
    subsampled: bool  # chroma sampled more coarsely than luma in y (its upsampling reads the next row)
    height_at: int  # byte offset of the 16-bit height in the SOF segment
    baseline: bool  # SOF0 / SOF1 (sequential Huffman): the scan can stop after any MCU row


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_header(data):
    """``JpegHeader`` of the JPEG bytes ``data`` (uint8 array), or None when it is not a JPEG or its frame
    header cannot be found before the first scan."""
    buf = memoryview(data)
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # segments without a length
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SOF:
            if i + 10 > n:
                return None
            height, width, components = (buf[i + 5] << 8) | buf[i + 6], (buf[i + 7] << 8) | buf[i + 8], buf[i + 9]
            if i + 10 + 3 * components > n or components == 0:
                return None
            v = [buf[i + 11 + 3 * c] & 0x0F for c in range(components)]
            return JpegHeader(width, height, 8 * max(v), min(v) < max(v), i + 5, marker in (0xC0, 0xC1))
        if marker in (0xDA, 0xD9):  # a scan or the end before any frame header
            return None
        i += 2 + length
    return None


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_stderr = None


def _mute_stderr():
    """Point file descriptor 2 at /dev/null; returns a duplicate of the old one to restore, or None (untouched)."""
    try:
        sys.stderr.flush()  # what Python buffered before goes out first
    except (AttributeError, OSError, ValueError):
        pass  # no usable sys.stderr (closed or replaced): nothing buffered to lose
    try:
        saved = os.dup(2)
    except OSError:
        return None
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
    except OSError:
        os.close(saved)
        return None
    return saved


class _QuietStderr:
    """File descriptor 2 on /dev/null while libjpeg warns of the bytes it skips on purpose (``rows``). Nested and
    concurrent uses share one redirection (the first in mutes, the last out restores); other threads' writes to
    fd 2 in that time are lost too."""

    def __enter__(self):
        global _quiet_depth, _saved_stderr
        with _quiet_lock:
            if _quiet_depth == 0:
                _saved_stderr = _mute_stderr()
            _quiet_depth += 1

    def __exit__(self, *exc):
        global _quiet_depth, _saved_stderr
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_stderr is not None:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image(data, where="image", rgb=True, rows=None, reduce=1, header=None):
    """Decode checked image bytes (``read_image_bytes``) to uint8 RGB (``rgb=False``: BGR); ``ImageError`` naming
    ``where`` when OpenCV cannot decode them.

    ``rows``: the caller needs only the top ``rows`` rows (full-size pixels) of the picture. A baseline JPEG
    is then decoded down to the end of the MCU row holding row ``rows`` (one more MCU row if chroma is
    subsampled vertically), so the image returned may have fewer rows than the file, each equal to the full
    decode's. ``reduce`` (1, 2, 4 or 8): a JPEG decoded at that fraction of its size (other formats: ignored,
    check ``image.shape``). ``header``: ``jpeg_header(data)`` if the caller has it already."""
    if reduce not in (1, 2, 4, 8):
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce!r}")
    header = header if header is not None else (jpeg_header(data) if rows is not None or reduce > 1 else None)
    if header is None:
        reduce = 1
    flags = _REDUCED[reduce]
    rgb_flag = rgb and _COLOR_RGB is not None
    if rgb_flag:
        flags = (flags & ~cv2.IMREAD_COLOR) | _COLOR_RGB
    flags |= cv2.IMREAD_IGNORE_ORIENTATION
    cut = None
    if rows is not None and header is not None and header.baseline and header.height > 0:
        mcu = header.mcu_height
        cut = (-(-max(int(rows), 1) // mcu) + (1 if header.subsampled else 0)) * mcu
        cut = cut if cut < header.height else None
    image = None
    if cut is not None:
        short = data.copy()
        short[header.height_at], short[header.height_at + 1] = cut >> 8, cut & 0xFF
        with _QuietStderr():
            image = cv2.imdecode(short, flags)
    if image is None:  # no cut, or a file the cut does not suit: the whole picture
        image = cv2.imdecode(data, flags)
    if image is None:
        raise ImageError(f"{where} is not a readable image (corrupt, or a format OpenCV does not decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb and not rgb_flag else image


def read_image(path, image_id=None, rgb=True):
    """The image at ``path`` as uint8 RGB (``rgb=False``: BGR as OpenCV reads it); ``ImageError`` when it is
    missing, empty, truncated or not an image, naming the file (and ``image_id``)."""
    return decode_image(read_image_bytes(path, image_id), _where(path, image_id), rgb=rgb)


def _check(path):
    try:
        read_image(path)
    except ImageError as e:
        return str(e)
    return None


def check_images(paths, workers=8, desc="checking images"):
    """Decode every file of ``paths`` (threads: OpenCV releases the GIL); returns ``{path: problem}`` of the
    bad ones, in the order given."""
    paths = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        problems = list(tqdm(pool.map(_check, paths), total=len(paths), desc=desc, dynamic_ncols=True,
                             mininterval=1.0))
    return {p: msg for p, msg in zip(paths, problems) if msg}
