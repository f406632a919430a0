"""Image bytes -> MobileNetV2 input tensor, or a rejection with its reason. No TensorFlow here."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

INPUT_SIZE = 224
# Fruits-360 images are 100x100; anything above this is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 50_000_000
# Pillow's own default for resize(), which the Keras reference (the P8 recipe) gets from
# `.resize([224, 224])`. Bilinear is 0.1 ms/image cheaper but its features sit at cosine 0.989 of
# the reference's on seeded weights, below the 0.9999 agreement (benchmarks/, README).
RESAMPLE = Image.Resampling.BICUBIC


class RejectedImage(ValueError):
    """An image that cannot be featurized; ``str()`` is the reason recorded in the rejects table."""


def scale_to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 in [-1, 1], exactly as ``keras.applications.mobilenet_v2.preprocess_input``."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


# Gray modes wider than 8 bits. Pillow's convert() clips them at 255 instead of scaling, which
# turns a 16-bit photo (0..65535) almost entirely white. 16-bit PNG/TIFF open as I;16 (mode I in
# older Pillow); 16-bit RGB and gray+alpha PNGs already open as 8-bit RGB/LA.
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ORIENTATION = 0x0112  # EXIF tag


def to_8bit_gray(img: Image.Image) -> Image.Image:
    """A wide gray image as mode L.

    Integer modes are read as 16-bit (0..65535 -> value/257, rounded); mode I values outside
    that range are clipped. Mode F: floats whose maximum is <= 1 are taken as 0..1 and scaled by
    255, others as already 0..255; then clipped to 0..255 (NaN becomes 0).
    """
    values = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        gray = np.clip(np.rint(values), 0, 255)
    else:
        gray = np.rint(np.clip(values, 0, 65535) / 257.0)
    return Image.fromarray(gray.astype(np.uint8), "L")


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, only when the tag says the stored pixels are not upright.

    Without the tag (Fruits-360 JPEGs) the image object is returned untouched, so the pixels
    stay identical to the Keras reference recipe, which never looks at EXIF.
    """
    try:
        if img.getexif().get(ORIENTATION) in (None, 1):
            return img
        return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return img  # malformed EXIF: the pixels decoded fine, keep them as stored


def load_rgb(data: bytes, size: int = INPUT_SIZE, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode (the first frame of an animation), turn upright by EXIF orientation, convert to
    8-bit RGB and resize to ``size`` x ``size``; uint8 array (size, size, 3)."""
    if not data:
        raise RejectedImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise RejectedImage(f"decompression bomb guard: {width}x{height} exceeds {max_pixels} pixels")
            # No JPEG draft (DCT-domain downscaling): it is faster on large photos but its features
            # measured at cosine 0.989-0.995 of a full decode, below the 0.9999 agreement.
            img.load()
    except RejectedImage:
        raise
    except UnidentifiedImageError:
        raise RejectedImage("not an image: format not recognised") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RejectedImage(f"decompression bomb guard: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise RejectedImage(f"truncated or corrupt image: {exc}") from None
    img = upright(img)
    if img.mode in WIDE_GRAY_MODES:
        img = to_8bit_gray(img)
    if img.mode != "RGB":
        # Covers 1, L, LA, P, PA, RGBA (alpha dropped, not blended), CMYK, YCbCr and friends.
        try:
            img = img.convert("RGB")
        except ValueError as exc:
            raise RejectedImage(f"unsupported image mode {img.mode}: {exc}") from None
    if img.size != (size, size):
        img = img.resize((size, size), RESAMPLE)
    return np.asarray(img, dtype=np.uint8)


def decode_image(data: bytes, size: int = INPUT_SIZE, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Image bytes -> float32 (size, size, 3) in [-1, 1]; raises :class:`RejectedImage`."""
    return scale_to_unit_range(load_rgb(data, size, max_pixels))
