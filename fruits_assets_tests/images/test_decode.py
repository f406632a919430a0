import io

import numpy as np
import pytest
from PIL import Image

from fruits_assets.images.decode import RejectedImage, load_rgb, scale_to_unit_range


def decode_image(data: bytes, **kwargs) -> np.ndarray:
    """What the model sees: load_rgb's uint8 pixels scaled as the graph does (x / 127.5 - 1)."""
    return scale_to_unit_range(load_rgb(data, **kwargs))


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def gradient(mode_from_rgb: str) -> Image.Image:
    x = np.linspace(0, 255, 100, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (100, 1)), np.tile(x[:, None], (1, 100)), np.full((100, 100), 90, np.uint8)], -1)
    return Image.fromarray(rgb, "RGB").convert(mode_from_rgb)


@pytest.mark.parametrize(
    "mode, fmt",
    [
        ("RGB", "JPEG"),
        ("L", "JPEG"),
        ("CMYK", "JPEG"),
        ("RGBA", "PNG"),
        ("P", "PNG"),
        ("LA", "PNG"),
        ("RGB", "PNG"),
    ],
)
@pytest.mark.fast
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


@pytest.mark.fast
def test_rgba_alpha_is_dropped_not_blended():
    img = Image.new("RGBA", (100, 100), (10, 200, 30, 0))
    assert tuple(load_rgb(encode(img, "PNG"))[50, 50]) == (10, 200, 30)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"GIF89a but not really", "not an image"),
        (b"%PDF-1.7 \x00\x01" * 20, "not an image"),
    ],
)
@pytest.mark.fast
def test_unreadable_bytes_are_rejected_with_reason(data, reason):
    with pytest.raises(RejectedImage, match=reason):
        decode_image(data)


@pytest.mark.fast
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_rejected(fmt):
    data = encode(gradient("RGB"), fmt)
    with pytest.raises(RejectedImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


@pytest.mark.fast
def test_decompression_bomb_is_rejected_before_decoding():
    data = encode(gradient("RGB"), "PNG")
    with pytest.raises(RejectedImage, match="decompression bomb"):
        decode_image(data, max_pixels=5_000)


@pytest.mark.fast
def test_larger_jpeg_is_downscaled():
    big = gradient("RGB").resize((1000, 800))
    assert decode_image(encode(big)).shape == (224, 224, 3)


@pytest.mark.parametrize("size", [(100, 100), (1000, 800)])
def test_pixels_are_exactly_the_keras_reference_preprocessing(size):
    """The P8 recipe's `Image.open(...).resize([224, 224])`: full decode, Pillow's default filter."""
    data = encode(gradient("RGB").resize(size))
    reference = np.asarray(Image.open(io.BytesIO(data)).resize([224, 224]))
    np.testing.assert_array_equal(load_rgb(data), reference)


# -- wide gray, EXIF orientation, other formats ---------------------------------------------------


def gray16_gradient(mode: str = "I;16") -> Image.Image:
    """256x256, column x holding x * 257: full 16-bit range, and exactly x once scaled to 8 bits."""
    values = np.tile(np.arange(256, dtype=np.uint16) * 257, (256, 1))
    return Image.fromarray(values).convert(mode) if mode != "I;16" else Image.fromarray(values)


def assert_gray_gradient(pixels: np.ndarray):
    expected = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], expected)


@pytest.mark.fast
@pytest.mark.parametrize("mode, fmt", [("I;16", "PNG"), ("I;16", "TIFF"), ("I", "TIFF")])
def test_16bit_gray_is_scaled_to_8bit_not_clipped(mode, fmt):
    img = gray16_gradient(mode)
    data = encode(img, fmt)
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I;16B", "I")  # really a wide image on disk
    pixels = load_rgb(data, size=256)
    assert (pixels == 255).mean() < 0.01  # convert("RGB") alone clips: 99.6 % white
    assert_gray_gradient(pixels)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.fast
def test_16bit_gray_alpha_png_keeps_its_gradient():
    """Pillow cannot write 16-bit gray+alpha, so the PNG is assembled by hand (colour type 4)."""
    import struct
    import zlib

    gray = np.tile(np.arange(256, dtype=">u2") * 257, (256, 1))
    pixels = np.stack([gray, np.full_like(gray, 65535)], -1)
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 16, 4, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )
    assert_gray_gradient(load_rgb(data, size=256))


@pytest.mark.fast
@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_gray_is_read_as_0_1_or_0_255(scale):
    values = np.tile(np.arange(256, dtype=np.float32) / 255 * scale, (256, 1))
    assert_gray_gradient(load_rgb(encode(Image.fromarray(values, "F"), "TIFF"), size=256))


def two_halves(size=(120, 80)) -> Image.Image:
    """Left half red, right half blue; wider than tall."""
    img = Image.new("RGB", size, (220, 20, 20))
    img.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    return img


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


@pytest.mark.fast
def test_exif_orientation_turns_the_image_upright():
    data = with_orientation(two_halves(), 6)  # stored sideways: display rotates 90 degrees clockwise
    pixels = load_rgb(data).astype(int)
    # Rotated clockwise, the stored left (red) half comes on top.
    assert pixels[:100, :, 0].mean() > 180 and pixels[:100, :, 2].mean() < 60
    assert pixels[124:, :, 2].mean() > 180 and pixels[124:, :, 0].mean() < 60
    stored = Image.open(io.BytesIO(data))
    manually = np.asarray(stored.transpose(Image.Transpose.ROTATE_270).resize((224, 224)))
    np.testing.assert_array_equal(load_rgb(data), manually)


@pytest.mark.fast
def test_orientation_1_leaves_pixels_as_the_reference_recipe():
    data = with_orientation(two_halves(), 1)
    reference = np.asarray(Image.open(io.BytesIO(data)).resize([224, 224]))
    np.testing.assert_array_equal(load_rgb(data), reference)


def quadrants() -> Image.Image:
    """Four flat colours: exact in lossless formats and in a palette."""
    img = Image.new("RGB", (100, 100), (200, 30, 30))
    img.paste((30, 200, 30), (50, 0, 100, 50))
    img.paste((30, 30, 200), (0, 50, 50, 100))
    img.paste((240, 240, 240), (50, 50, 100, 100))
    return img


QUADRANT_CENTRES = {
    (56, 56): (200, 30, 30),
    (56, 168): (30, 200, 30),
    (168, 56): (30, 30, 200),
    (168, 168): (240, 240, 240),
}


def encode_with(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt, mode, options",
    [
        ("GIF", "P", {}),
        ("BMP", "RGB", {}),
        ("TIFF", "RGB", {}),
        ("TIFF", "RGB", {"compression": "tiff_lzw"}),
        ("WEBP", "RGB", {"lossless": True}),
        ("PNG", "P", {}),
        ("PNG", "P", {"transparency": 0}),
        ("PNG", "RGBA", {}),
        ("TIFF", "CMYK", {}),
    ],
)
@pytest.mark.fast
def test_other_formats_and_modes_decode_to_rgb(fmt, mode, options):
    img = quadrants()
    if mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)  # exact: four colours
    elif mode != "RGB":
        img = img.convert(mode)
    data = encode_with(img, fmt, **options)
    pixels = load_rgb(data)
    for (y, x), colour in QUADRANT_CENTRES.items():
        assert tuple(pixels[y, x]) == colour, (fmt, mode, (y, x))


@pytest.mark.fast
def test_la_image_keeps_its_gray_and_drops_alpha():
    img = Image.new("LA", (100, 100), (77, 0))
    assert tuple(load_rgb(encode_with(img, "PNG"))[10, 10]) == (77, 77, 77)


@pytest.mark.fast
def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (100, 100), c) for c in [(200, 30, 30), (30, 30, 200)]]
    data = encode_with(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert tuple(load_rgb(data)[100, 100]) == (200, 30, 30)


@pytest.mark.fast
def test_unconvertible_mode_is_a_reject_not_a_crash(monkeypatch):
    def refuse(self, mode=None, *args, **kwargs):
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")

    monkeypatch.setattr(Image.Image, "convert", refuse)
    with pytest.raises(RejectedImage, match="unsupported image mode P"):
        load_rgb(encode(Image.new("P", (10, 10)), "PNG"))
