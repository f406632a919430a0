"""fruits_assets.images.inventory.scan on real files: every file is an image or skipped with a reason."""

import hashlib
import io
import json
import os
import socket
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fruits_assets.images.inventory import IMAGE_COLUMNS, SKIPPED_COLUMNS, scan
from fruits_assets.images.layout import is_image_name
from fruits_assets_tests.conftest import N_SAMPLE

IMAGE_FORMATS = {
    "a.gif": "GIF",
    "b.bmp": "BMP",
    "c.tiff": "TIFF",
    "d.webp": "WEBP",
    "e.TIF": "TIFF",
    "f.JPG": "JPEG",
    "g.png": "PNG",
}


def image_bytes(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (20, 10), 120).save(buf, fmt)
    return buf.getvalue()


def png16() -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.arange(200, dtype=np.uint16) * 300).reshape(10, 20)).save(buf, "PNG")
    return buf.getvalue()


def physical_entries(root: bytes) -> int:
    """Directory entries that are not real directories: files, symlinks (to anything), FIFOs."""
    count = 0
    for folder, dirs, files in os.walk(root):  # does not follow links: a dir link is counted once
        count += len(files) + sum(os.path.islink(os.path.join(folder, d)) for d in dirs)
    return count


@pytest.fixture
def messy(tmp_path):
    """A collection with every kind of entry a real disk can hold; returns (root, image names)."""
    root = tmp_path / "images"
    apple, kiwi = root / "Training" / "Apple", root / "Test" / "Kiwi"
    apple.mkdir(parents=True)
    kiwi.mkdir(parents=True)
    for name, fmt in IMAGE_FORMATS.items():
        (apple / name).write_bytes(image_bytes(fmt))
    (apple / "h16.png").write_bytes(png16())
    (root / "README.txt").write_text("Fruits-360\n")
    (kiwi / "notes").write_text("no extension\n")
    os.symlink("..", apple / "loopdir")  # -> Training: walking it would recurse forever
    os.mkfifo(apple / "x.jpg")  # opening it to read would block forever
    os.symlink(kiwi / "gone.jpg", kiwi / "y.jpg")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "real.png").write_bytes(image_bytes("PNG"))
    os.symlink(outside / "real.png", kiwi / "linked_out.png")
    os.symlink(apple / "g.png", kiwi / "linked_in.png")
    fd = os.open(os.fsencode(kiwi) + b"/latin1_\xe9.jpg", os.O_CREAT | os.O_WRONLY)
    os.write(fd, image_bytes("JPEG"))
    os.close(fd)
    bad_dir = os.fsencode(root / "Test") + b"/caf\xe9"
    os.mkdir(bad_dir)
    with open(bad_dir + b"/z.jpg", "wb") as f:
        f.write(image_bytes("JPEG"))
    images = [f"Training/Apple/{n}" for n in [*IMAGE_FORMATS, "h16.png"]]
    images += ["Test/Kiwi/linked_out.png", "Test/Kiwi/linked_in.png"]
    return root, sorted(images)


@pytest.mark.fast
def test_every_entry_is_an_image_or_skipped_with_its_reason(messy):
    root, expected_images = messy
    result = scan(str(root))
    prefix = f"file:{root}/"
    assert list(result.images.columns) == IMAGE_COLUMNS and list(result.skipped.columns) == SKIPPED_COLUMNS
    assert [p[len(prefix) :] for p in result.images["path"]] == expected_images  # sorted, never duplicated
    reasons = {p[len(prefix) :]: r for p, r in zip(result.skipped["path"], result.skipped["reason"])}
    assert reasons == {
        "README.txt": "not an image by name (.txt)",
        "Test/Kiwi/notes": "not an image by name (no extension)",
        "Training/Apple/loopdir": "symlink loop (already scanned: Training)",
        "Training/Apple/x.jpg": "not a regular file (fifo)",
        "Test/Kiwi/y.jpg": "dangling symlink",
        "Test/Kiwi/latin1_\\xe9.jpg": "file name is not valid UTF-8",
        "Test/caf\\xe9/z.jpg": "file name is not valid UTF-8",
    }
    assert len(result.images) + len(result.skipped) == physical_entries(os.fsencode(root))
    assert result.skipped_counts() == {
        "file name is not valid UTF-8": 2,
        "dangling symlink": 1,
        "not a regular file (fifo)": 1,
        "not an image by name (.txt)": 1,
        "not an image by name (no extension)": 1,
        "symlink loop (already scanned: Training)": 1,
    }


@pytest.mark.fast
def test_image_rows_carry_layout_and_size(messy):
    root, _ = messy
    images = scan(str(root)).images.set_index("path")
    row = images.loc[f"file:{root}/Test/Kiwi/linked_out.png"]  # the link's path, the target's size
    assert (row["split"], row["label"], row["bytes"]) == ("Test", "Kiwi", len(image_bytes("PNG")))
    assert images["bytes"].dtype == "int64"
    assert set(images["label"]) == {"Apple", "Kiwi"}


@pytest.mark.fast
def test_frames_take_strings_arrow_can_write(messy):
    """Undecodable names are shown with \\xNN: the frames must survive Arrow (Parquet, Spark)."""
    import pyarrow as pa

    root, _ = messy
    result = scan(str(root))
    assert str(result.skipped["path"].dtype) == "string" and str(result.skipped["reason"].dtype) == "string"
    pa.Table.from_pandas(result.skipped)
    pa.Table.from_pandas(result.images)


@pytest.mark.fast
def test_file_outside_the_layout_is_an_image_without_label(tmp_path):
    (tmp_path / "Training" / "Apple").mkdir(parents=True)
    (tmp_path / "stray.jpg").write_bytes(image_bytes("JPEG"))
    (tmp_path / "Training" / "Apple" / "ok.jpg").write_bytes(image_bytes("JPEG"))
    images = scan(str(tmp_path)).images
    assert images["path"].tolist() == [f"file:{tmp_path}/Training/Apple/ok.jpg", f"file:{tmp_path}/stray.jpg"]
    assert images["label"].tolist() == ["Apple", None] and images["split"].tolist() == ["Training", None]


@pytest.mark.fast
def test_a_second_link_to_one_folder_lists_its_files_once_under_the_real_path(tmp_path):
    (tmp_path / "Training" / "Apple").mkdir(parents=True)
    (tmp_path / "Training" / "Apple" / "1.png").write_bytes(image_bytes("PNG"))
    os.symlink(tmp_path / "Training", tmp_path / "AAA_alias")  # sorts before the real folder
    result = scan(str(tmp_path))
    assert result.images["path"].tolist() == [f"file:{tmp_path}/Training/Apple/1.png"]
    assert result.skipped["reason"].tolist() == ["duplicate directory (already scanned: Training)"]


def skip_reasons(root) -> dict:
    skipped = scan(str(root)).skipped
    return dict(zip(skipped["path"], skipped["reason"]))


@pytest.mark.fast
def test_self_referencing_link_is_skipped(tmp_path):
    os.symlink("me.jpg", tmp_path / "me.jpg")
    assert skip_reasons(tmp_path) == {f"file:{tmp_path}/me.jpg": "symlink loop (the link resolves to itself)"}


@pytest.mark.fast
def test_socket_is_skipped(tmp_path):
    path = tmp_path / "s.png"
    if len(os.fsencode(path)) >= 100:
        pytest.skip("AF_UNIX paths are limited to about 100 bytes")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert skip_reasons(tmp_path) == {f"file:{path}": "not a regular file (socket)"}


@pytest.mark.fast
def test_unreadable_folder_is_skipped_not_fatal(tmp_path, monkeypatch):
    (tmp_path / "Training" / "Locked").mkdir(parents=True)
    (tmp_path / "Training" / "Apple").mkdir(parents=True)
    (tmp_path / "Training" / "Apple" / "1.png").write_bytes(image_bytes("PNG"))
    locked = str(tmp_path / "Training" / "Locked")
    real_scandir = os.scandir

    def scandir(path):  # root ignores chmod 000, so refuse the way the kernel would
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = scan(str(tmp_path))
    assert len(result.images) == 1
    assert result.skipped.to_dict("records") == [
        {"path": f"file:{locked}", "reason": "unreadable directory (Permission denied)"}
    ]


@pytest.mark.fast
def test_missing_root_names_it_and_what_to_set(tmp_path):
    message = r"image store .*nowhere does not exist \(set FRUITS_IMAGES_DIR"
    with pytest.raises(FileNotFoundError, match=message):
        scan(str(tmp_path / "nowhere"))


@pytest.mark.fast
def test_empty_root_gives_empty_frames(tmp_path):
    result = scan(str(tmp_path))
    assert result.images.empty and result.skipped.empty
    assert list(result.images.columns) == IMAGE_COLUMNS and list(result.skipped.columns) == SKIPPED_COLUMNS
    assert result.skipped_counts() == {}


@pytest.mark.fast
def test_clean_collection_is_all_images(sample_images):
    result = scan(str(sample_images))
    assert len(result.images) == N_SAMPLE and result.skipped.empty
    assert result.images["label"].notna().all()
    assert scan("file:" + str(sample_images)).images.equals(result.images)


@pytest.mark.parametrize(
    "name", ["a.gif", "a.GIF", "a.bmp", "a.tif", "a.TIFF", "a.webp", "a.ppm", "a.jpg", "a.JPEG", "a.Png", "x.y.jpg"]
)
@pytest.mark.fast
def test_names_pillow_can_open_are_images(name):
    assert is_image_name(name)


@pytest.mark.fast
@pytest.mark.parametrize("name", ["a.pdf", "a.txt", "a.jpg.txt", "jpg", "README", ".jpg"])
def test_other_names_are_not_images(name):
    assert not is_image_name(name)


# -- S3 (moto's server) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_s3():
    from fruits_assets_tests.emr_harness.harness import MotoAws

    with MotoAws() as aws:
        yield aws


@pytest.fixture
def s3_env(moto_s3, monkeypatch):
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    return moto_s3


# moto's backends are process-wide: a bucket name no other test uses
INVENTORY_BUCKET = "inventory-test-images"


def test_s3_keys_are_classified_and_folder_markers_ignored(s3_env):
    s3 = s3_env.client("s3")
    s3.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": s3_env.region})
    objects = {
        "raw/Training/Apple/1.gif": image_bytes("GIF"),
        "raw/Training/Apple/notes.txt": b"hello",
        "raw/Training/folder/": b"",
        "raw/Test/": b"",
        "raw/stray.webp": image_bytes("WEBP"),
        "raw2/Training/Apple/2.jpg": b"outside the prefix",
    }
    for key, body in objects.items():
        s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=body)
    result = scan(f"s3://{INVENTORY_BUCKET}/raw", endpoint_url=s3_env.endpoint, region=s3_env.region)
    assert result.images.to_dict("records") == [
        {
            "path": f"s3://{INVENTORY_BUCKET}/raw/Training/Apple/1.gif",
            "label": "Apple",
            "split": "Training",
            "bytes": len(objects["raw/Training/Apple/1.gif"]),
            "fingerprint": f"{len(objects['raw/Training/Apple/1.gif'])}:etag:"
            f"{hashlib.md5(objects['raw/Training/Apple/1.gif']).hexdigest()}",
        },
        {
            "path": f"s3://{INVENTORY_BUCKET}/raw/stray.webp",
            "label": None,
            "split": None,
            "bytes": len(objects["raw/stray.webp"]),
            "fingerprint": f"{len(objects['raw/stray.webp'])}:etag:"
            f"{hashlib.md5(objects['raw/stray.webp']).hexdigest()}",
        },
    ]
    assert result.skipped.to_dict("records") == [
        {"path": f"s3://{INVENTORY_BUCKET}/raw/Training/Apple/notes.txt", "reason": "not an image by name (.txt)"}
    ]

    s3.put_object(Bucket=INVENTORY_BUCKET, Key="empty/", Body=b"")
    empty = scan(f"s3://{INVENTORY_BUCKET}/empty/", endpoint_url=s3_env.endpoint, region=s3_env.region)
    assert empty.images.empty and empty.skipped.empty
    for missing in (f"s3://{INVENTORY_BUCKET}/nothing-here", "s3://no-such-bucket/raw"):
        with pytest.raises(FileNotFoundError, match=f"image store {missing} does not exist"):
            scan(missing, endpoint_url=s3_env.endpoint, region=s3_env.region)


def test_a_same_size_swap_with_its_mtime_restored_changes_the_fingerprint(tmp_path):
    """Measured on the old fingerprint (size + mtime): a stale vector was kept for such a file."""
    folder = tmp_path / "Training" / "Kiwi"
    folder.mkdir(parents=True)
    image = folder / "1_100.jpg"
    image.write_bytes(b"\xff\xd8" + b"a" * 100)
    before = scan(str(tmp_path)).images["fingerprint"].tolist()
    stat = os.stat(image)
    time.sleep(0.01)
    image.write_bytes(b"\xff\xd8" + b"b" * 100)  # same size, other bytes
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the modification time restored
    assert os.stat(image).st_mtime_ns == stat.st_mtime_ns and os.stat(image).st_size == stat.st_size
    assert scan(str(tmp_path)).images["fingerprint"].tolist() != before


LISTING_BUCKET = "listing-scale-test"
LABELS = ("Apple Braeburn", "Kiwi", "Pear 2")


@pytest.fixture
def labelled_bucket(s3_env):
    """Training|Test/<3 labels>/2 images each, plus a stray note, in a bucket of its own."""
    s3 = s3_env.client("s3")
    if LISTING_BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=LISTING_BUCKET, CreateBucketConfiguration={"LocationConstraint": s3_env.region})
        for split in ("Training", "Test"):
            for label in LABELS:
                for i in range(2):
                    body = image_bytes("PNG") + f"{split}{label}{i}".encode()
                    s3.put_object(Bucket=LISTING_BUCKET, Key=f"raw/{split}/{label}/{i}_100.png", Body=body)
        s3.put_object(Bucket=LISTING_BUCKET, Key="raw/Training/README.txt", Body=b"notes")
        s3.put_object(Bucket=LISTING_BUCKET, Key="raw/Test/Kiwi/LICENSE", Body=b"no extension")
        s3.put_object(Bucket=LISTING_BUCKET, Key="raw/Test/Kiwi/UPPER_100.PNG", Body=image_bytes("PNG"))
    return s3


def test_s3_prefixes_are_listed_concurrently(s3_env, labelled_bucket):
    """One delimiter listing of the root, the splits' listings together, then every
    <split>/<label>/ prefix by its own concurrent call: counted with botocore's own events, each
    call held 50 ms as S3's latency would."""
    import threading
    import time

    import boto3

    from fruits_assets.images.listing import list_in_threads, plan_shards

    state = {"in_flight": 0, "max": 0, "calls": 0}
    lock = threading.Lock()

    def before(**kwargs):
        with lock:
            state["in_flight"] += 1
            state["calls"] += 1
            state["max"] = max(state["max"], state["in_flight"])
        time.sleep(0.05)

    def after(**kwargs):
        with lock:
            state["in_flight"] -= 1

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call.s3.ListObjectsV2", before)
    boto3.DEFAULT_SESSION.events.register("after-call.s3.ListObjectsV2", after)
    try:
        root = f"s3://{LISTING_BUCKET}/raw"
        shards = plan_shards(root, s3_env.endpoint, s3_env.region)
        planned = state["calls"]
        stats, rows = list_in_threads(root, shards, s3_env.endpoint, s3_env.region, keep_rows=True)
    finally:
        boto3.DEFAULT_SESSION = None
    assert planned == 1 + 2  # the root, then both splits
    assert sorted(s.value for s in shards if s.kind == "prefix") == sorted(
        f"raw/{split}/{label}/" for split in ("Training", "Test") for label in LABELS
    )
    assert state["calls"] == planned + 3 + 6  # root + 2 split levels, 6 label prefixes
    assert state["max"] >= 4, state  # without concurrency it would be 1
    assert stats.images == 13 and len(rows) == 15
    assert stats.skipped == {"not an image by name (.txt)": 1, "not an image by name (no extension)": 1}
    assert scan(root, s3_env.endpoint, s3_env.region).images.shape[0] == 13


def write_inventory(s3_env, s3, file_format: str, created_ms: int, name: str = "", **overrides) -> str:
    """An S3 Inventory report of the bucket as AWS writes it: data files plus manifest.json
    (CSV: gzipped, keys URL-encoded; Parquet: AWS's column names)."""
    import gzip
    import io
    import json
    import time
    from urllib.parse import quote_plus

    import pyarrow as pa
    import pyarrow.parquet as pq

    objects = [
        o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LISTING_BUCKET) for o in page["Contents"]
    ]
    objects.append({"Key": "other/x.png", "Size": 3, "ETag": '"abc"'})  # outside the image prefix
    half = len(objects) // 2
    keys = []
    for n, chunk in enumerate((objects[:half], objects[half:])):
        if file_format == "CSV":
            text = "".join(
                f'"{LISTING_BUCKET}","{quote_plus(o["Key"])}","{o["Size"]}","{o["ETag"].strip(chr(34))}"\n'
                for o in chunk
            )
            body, key = gzip.compress(text.encode()), f"inv/data/{n}.csv.gz"
        else:
            table = pa.table(
                {
                    "bucket": [LISTING_BUCKET] * len(chunk),
                    "key": [o["Key"] for o in chunk],
                    "size": pa.array([o["Size"] for o in chunk], pa.int64()),
                    "e_tag": [o["ETag"].strip('"') for o in chunk],
                }
            )
            buf = io.BytesIO()
            pq.write_table(table, buf)
            body, key = buf.getvalue(), f"inv/data/{n}.parquet"
        s3.put_object(Bucket=LISTING_BUCKET, Key=key, Body=body)
        keys.append(key)
    schema = (
        "Bucket, Key, Size, ETag"
        if file_format == "CSV"
        else "message s3.inventory { required binary bucket (STRING); required binary key (STRING); "
        "optional int64 size; optional binary e_tag (STRING); }"
    )
    manifest = {
        "sourceBucket": LISTING_BUCKET,
        "destinationBucket": f"arn:aws:s3:::{LISTING_BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": str(created_ms or int(time.time() * 1000)),
        "fileFormat": file_format,
        "fileSchema": schema,
        "files": [{"key": k, "size": 1, "MD5checksum": "x"} for k in keys],
        **overrides,
    }
    key = f"inv/{file_format}{name}/manifest.json"
    s3.put_object(Bucket=LISTING_BUCKET, Key=key, Body=json.dumps(manifest).encode())
    return f"s3://{LISTING_BUCKET}/{key}"


@pytest.mark.parametrize("file_format", ["CSV", "Parquet"])
def test_an_inventory_report_gives_the_same_inventory_as_a_listing(s3_env, labelled_bucket, file_format, tmp_path):
    root = f"s3://{LISTING_BUCKET}/raw"
    listed = scan(root, s3_env.endpoint, s3_env.region)
    manifest = write_inventory(s3_env, labelled_bucket, file_format, 0)
    reported = scan(root, s3_env.endpoint, s3_env.region, manifest_uri=manifest)
    pd.testing.assert_frame_equal(reported.images, listed.images)
    pd.testing.assert_frame_equal(reported.skipped, listed.skipped)
    assert "Apple Braeburn" in set(reported.images["label"])  # CSV keys are URL-decoded
    # What raw_images writes: the report's rows computed column-wise equal a listing's, row for row.
    import pyarrow.parquet as pq

    from fruits_assets.images.listing import list_to_parts, plan_shards

    written = {}
    for name, uri in (("listing", None), ("report", manifest)):
        shards = plan_shards(root, s3_env.endpoint, s3_env.region, uri)
        out = tmp_path / name
        stats = list_to_parts(root, shards, str(out / "part"), s3_env.endpoint, s3_env.region)
        table = pq.read_table(str(out)).to_pandas().sort_values("path", ignore_index=True)
        written[name] = (stats, table)
    (listing_stats, listing_rows), (report_stats, report_rows) = written["listing"], written["report"]
    pd.testing.assert_frame_equal(report_rows, listing_rows)
    assert json.loads(report_stats.to_json()) == json.loads(listing_stats.to_json())
    assert report_stats.images == 13 and report_stats.classes == 3


def test_a_stale_or_malformed_inventory_report_is_refused_in_one_line(s3_env, labelled_bucket):
    import time

    from fruits_assets.images.s3_inventory import ManifestError

    root = f"s3://{LISTING_BUCKET}/raw"
    three_days_ago = int((time.time() - 3 * 86400) * 1000)
    cases = {
        "is 72 h old": write_inventory(s3_env, labelled_bucket, "CSV", three_days_ago, "1"),
        "lack etag": write_inventory(s3_env, labelled_bucket, "CSV", 0, "2", fileSchema="Bucket, Key, Size"),
        "lists bucket elsewhere": write_inventory(s3_env, labelled_bucket, "CSV", 0, "3", sourceBucket="elsewhere"),
        "format ORC": write_inventory(s3_env, labelled_bucket, "CSV", 0, "4", fileFormat="ORC"),
        "malformed: missing or bad field 'files'": write_inventory(s3_env, labelled_bucket, "CSV", 0, "5", files=None),
    }
    for expected, manifest in cases.items():
        with pytest.raises(ManifestError) as caught:
            scan(root, s3_env.endpoint, s3_env.region, manifest_uri=manifest)
        assert expected in str(caught.value) and "\n" not in str(caught.value), (expected, caught.value)
    labelled_bucket.put_object(Bucket=LISTING_BUCKET, Key="inv/bad/manifest.json", Body=b"{not json")
    with pytest.raises(ManifestError, match="cannot be read"):
        scan(root, s3_env.endpoint, s3_env.region, manifest_uri=f"s3://{LISTING_BUCKET}/inv/bad/manifest.json")
