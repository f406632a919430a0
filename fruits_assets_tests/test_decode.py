import io

import numpy as np
import pytest
from PIL import Image

from fruits_assets.decode import RejectedImage, decode_image, load_rgb


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def gradient(mode_from_rgb: str) -> Image.Image:
    x = np.linspace(0, 255, 100, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (100, 1)), np.tile(x[:, None], (1, 100)), np.full((100, 100), 90, np.uint8)], -1)
    return Image.fromarray(rgb, "RGB").convert(mode_from_rgb)


@pytest.mark.parametrize("mode, fmt", [
    ("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("RGB", "PNG"),
])
def test_any_mode_becomes_rgb_224_in_unit_range(mode, fmt):
    out = decode_image(encode(gradient(mode), fmt))
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert -1.0 <= out.min() < -0.5 and 0.5 < out.max() <= 1.0  # the gradient spans the range
    if mode in ("L", "LA"):
        assert np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2])


def test_scaling_matches_keras_preprocess_input():
    from keras.applications.mobilenet_v2 import preprocess_input

    data = encode(gradient("RGB"), "PNG")
    pixels = load_rgb(data)
    expected = preprocess_input(pixels.astype(np.float32))
    np.testing.assert_allclose(decode_image(data), expected, rtol=0, atol=1e-6)


def test_rgba_alpha_is_dropped_not_blended():
    img = Image.new("RGBA", (100, 100), (10, 200, 30, 0))
    assert tuple(load_rgb(encode(img, "PNG"))[50, 50]) == (10, 200, 30)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"GIF89a but not really", "not an image"),
    (b"%PDF-1.7 \x00\x01" * 20, "not an image"),
])
def test_unreadable_bytes_are_rejected_with_reason(data, reason):
    with pytest.raises(RejectedImage, match=reason):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_rejected(fmt):
    data = encode(gradient("RGB"), fmt)
    with pytest.raises(RejectedImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_rejected_before_decoding():
    data = encode(gradient("RGB"), "PNG")
    with pytest.raises(RejectedImage, match="decompression bomb"):
        decode_image(data, max_pixels=5_000)


def test_larger_jpeg_is_downscaled():
    big = gradient("RGB").resize((1000, 800))
    assert decode_image(encode(big)).shape == (224, 224, 3)


@pytest.mark.parametrize("size", [(100, 100), (1000, 800)])
def test_pixels_are_exactly_the_keras_reference_preprocessing(size):
    """The P8 recipe's `Image.open(...).resize([224, 224])`: full decode, Pillow's default filter."""
    data = encode(gradient("RGB").resize(size))
    reference = np.asarray(Image.open(io.BytesIO(data)).resize([224, 224]))
    np.testing.assert_array_equal(load_rgb(data), reference)
