"""The order-free row digest: what the sensor, raw_images and the incremental plan compare."""

import pytest

from fruits_assets.images.digest import RowDigest

pytestmark = pytest.mark.fast


def test_digest_is_order_free_additive_and_tells_rows_apart():
    rows = [(f"s3://b/raw/Training/Kiwi/{i}.jpg", f"{i}:etag:{i:x}") for i in range(20_000)]
    one_by_one, at_once, reversed_ = RowDigest(), RowDigest(), RowDigest()
    for path, fingerprint in rows:
        one_by_one.add(path, fingerprint)
    at_once.add_many([p for p, _ in rows], [f for _, f in rows])
    for path, fingerprint in reversed(rows):
        reversed_.add(path, fingerprint)
    assert one_by_one == at_once == reversed_ and one_by_one.count == 20_000
    first, second = RowDigest(), RowDigest()
    first.add_many([p for p, _ in rows[:7]], [f for _, f in rows[:7]])
    second.add_many([p for p, _ in rows[7:]], [f for _, f in rows[7:]])
    assert RowDigest().merge(first).merge(second) == at_once and at_once.minus(first) == second
    changed = RowDigest()
    changed.add_many([p for p, _ in rows], [f for _, f in rows[:-1]] + ["other"])
    assert changed != at_once and changed.count == at_once.count
    assert RowDigest.parse(at_once.hexdigest()) == at_once
    # path and fingerprint are kept apart: moving a character across the boundary changes it
    a, b = RowDigest(), RowDigest()
    a.add("x.jpg", "1")
    b.add("x.jpg1", "")
    assert a != b
