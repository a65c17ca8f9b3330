"""Still photographs as one-frame clips: read upright, RGB, refused before they can fill memory.

A self-blended pseudo-fake is made per frame, so a photograph is as good a training sample as a
video frame, and photographs reach far more people than videos do. ``ImageReader`` offers the part
of ``VideoReader``'s interface that preprocessing uses, so a photo goes through the same detection,
tracking, cropping and manifest as a video.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dflib.video import VideoError, VideoInfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
# A 200-megapixel photo already needs 600 MB as RGB; a PNG header can declare billions of pixels
# in a few hundred bytes (a decompression bomb), so the size is checked before any pixel is decoded.
MAX_IMAGE_PIXELS = 200_000_000


def is_image(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """(H,W,3) uint8 RGB, turned upright by its EXIF orientation (phone photos are stored sideways)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise VideoError(path, "file not found")
    if path.is_dir():
        raise VideoError(path, "is a folder, not an image")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own check below, with a plain message, replaces Pillow's
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise VideoError(path, f"image too large: {width}x{height} pixels declared "
                                       f"(more than {max_pixels:,}); not decoded")
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()
    except VideoError:
        raise
    except UnidentifiedImageError as error:
        raise VideoError(path, "not a readable image (unknown or corrupt format)") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise VideoError(path, f"corrupt image ({error})") from error
    finally:
        Image.MAX_IMAGE_PIXELS = limit


class ImageReader:
    """A photo as a video of one frame, for preprocessing."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._image = read_image(self.path)

    @property
    def n_frames(self) -> int:
        return 1

    def timestamps(self, indices) -> np.ndarray:
        return np.zeros(len(indices), dtype=np.float64)

    def info(self) -> VideoInfo:
        height, width = self._image.shape[:2]
        return VideoInfo(str(self.path), width, height, 0.0, 1, 0.0, 0, "image")

    def read_ahead(self, indices, snap_to_reference: bool = False):
        if 0 in {int(i) for i in indices}:
            yield 0, self._image
