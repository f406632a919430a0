import pytest

from fruits_assets.images.layout import is_image_name, parse_image_path, relative_image_path

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    "path, split, label",
    [
        ("Training/Apple Braeburn/1_100.jpg", "Training", "Apple Braeburn"),
        ("Test/Clémentine/r_2_100.jpg", "Test", "Clémentine"),
        ("Training/Apple%20Braeburn/1_100.jpg", "Training", "Apple Braeburn"),
        ("Test/Cl%C3%A9mentine/0_100.jpg", "Test", "Clémentine"),
        ("Training/Pear 100%/3_100.jpg", "Training", "Pear 100%"),  # a lone % is not an escape
    ],
)
def test_split_and_label(path, split, label):
    assert parse_image_path(path) == (split, label)


@pytest.mark.parametrize("path", ["Apple Braeburn/1_100.jpg", "1_100.jpg", "a/Training/Apple/1.jpg"])
def test_wrong_depth_is_refused(path):
    with pytest.raises(ValueError, match="<split>/<label>/<file>"):
        parse_image_path(path)


def test_relative_to_spark_root():
    root = "file:/data/fruits 360"
    path = "file:/data/fruits 360/Training/Apple Braeburn/1_100.jpg"
    assert parse_image_path(relative_image_path(path, root)).label == "Apple Braeburn"
    assert relative_image_path("s3://b/raw/Test/Kiwi/1.jpg", "s3://b/raw/") == "Test/Kiwi/1.jpg"
    with pytest.raises(ValueError, match="not under"):
        relative_image_path("file:/elsewhere/Test/Kiwi/1.jpg", root)


def test_extensions_are_case_insensitive():
    assert all(map(is_image_name, ["a.jpg", "a.JPG", "a.Jpeg", "a.png", "a.PNG"]))
    assert not any(map(is_image_name, ["a.pdf", "a.jpg.txt", "jpg"]))
    assert all(map(is_image_name, ["a.gif", "a.BMP", "a.tiff", "a.webp"]))  # every format Pillow opens
