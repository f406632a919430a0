"""The incremental plan in Spark: inventory, committed feature files and rejections in, what to
compute and which files stay, counts and digests out (no row per image on the driver)."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fruits_assets.images.digest import RowDigest
from fruits_assets.images.listing import inventory_schema
from fruits_assets.spark import plan as spark_plan
from fruits_assets.spark.featurize import FEATURES_SCHEMA, REJECTS_SCHEMA
from fruits_assets.storage.fs import Location


def write(path, schema, rows):
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    pq.write_table(pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema), path)
    return str(path)


def inventory(tmp_path, fingerprints: dict) -> str:
    rows = [(p, "x", "Training", 1, fp, None) for p, fp in fingerprints.items()]
    rows.append(("notes.txt", None, None, 5, None, "not an image by name (.txt)"))
    return write(tmp_path / "inventory.parquet", inventory_schema(), rows)


def features_file(tmp_path, name, paths):
    return write(tmp_path / name, FEATURES_SCHEMA, [(p, "x", "Training", [float(i)], "1") for i, p in enumerate(paths)])


def test_plan_retries_transient_rejects_and_never_rejects_a_featurized_path(spark, tmp_path):
    inv = inventory(tmp_path, {"a": "1", "b": "1", "c": "1", "d": "1"})
    feats = [features_file(tmp_path, "f0.parquet", ["a", "d"])]  # d has a feature row too
    rejects = write(
        tmp_path / "rejects.parquet",
        REJECTS_SCHEMA,
        [
            ("b", "x", "Training", 1, "truncated or corrupt image: broken", "1"),
            ("c", "x", "Training", 1, "unreadable: OSError: timeout", "1"),
            ("d", "x", "Training", 1, "not an image: format not recognised", "1"),
        ],
    )
    todo = spark_plan.plan(spark, [inv], feats, [rejects], Location(), None)
    try:
        assert todo.reason == "incremental" and todo.inventory_rows == 4
        assert todo.carried_rows == 2 and todo.untouched == [0] and todo.rewrite == [] == todo.removed_files
        assert [r["path"] for r in todo.carried_rejects.collect()] == ["b"]  # deterministic: not retried
        assert [r["path"] for r in todo.compute.collect()] == ["c"]  # a transient read error: retried
        expected = RowDigest()
        for p in ("a", "d"):
            expected.add(p, "1")
        assert todo.carried_digest == expected and todo.carried_per_split == {"Training": 2}
    finally:
        todo.release()


def test_a_file_with_a_changed_row_is_rewritten_without_it_and_the_rest_stay(spark, tmp_path):
    inv = inventory(tmp_path, {"a": "1", "b": "2", "c": "1", "e": "1"})  # b changed, d gone, e new
    feats = [features_file(tmp_path, "f0.parquet", ["a", "b"]), features_file(tmp_path, "f1.parquet", ["c"])]
    feats.append(features_file(tmp_path, "f2.parquet", ["d"]))
    todo = spark_plan.plan(spark, [inv], feats, [], Location(), None)
    try:
        assert (todo.untouched, todo.rewrite, todo.removed_files) == ([1], [0], [0, 2])
        assert sorted(r["path"] for r in todo.compute.collect()) == ["b", "e"]
        assert todo.removed == 1 and todo.carried_rows == 2
        out = tmp_path / "out"
        assert spark_plan.rewrite_survivors(todo, feats, str(out / "part-r"), Location()) == 1
        [rewritten] = list(out.iterdir())
        table = pq.read_table(rewritten)
        assert rewritten.name == "part-r-c00000.parquet" and table.column("path").to_pylist() == ["a"]
        assert table.column("features").to_pylist() == [[0.0]]  # copied bit for bit
    finally:
        todo.release()


def test_a_new_featurizer_recomputes_everything_and_counts_what_is_gone(spark, tmp_path):
    inv = inventory(tmp_path, {"a": "1"})
    feats = [features_file(tmp_path, "f0.parquet", ["a", "z"])]
    todo = spark_plan.plan(spark, [inv], feats, [], Location(), "the model changed")
    try:
        assert todo.reason == "the model changed" and todo.compute_rows == 1 and todo.removed == 1
        assert todo.removed_files == [0] and todo.carried_rows == 0
    finally:
        todo.release()


def test_the_probe_plan_in_spark_is_the_reference_plan(spark, tmp_path):
    """Roles, per-class caps and counts computed by Spark equal the pure reference
    (analysis/probe_metrics.plan_roles), with and without a Test split, capped or not."""
    import pandas as pd

    from fruits_assets.analysis.probe_metrics import plan_roles
    from fruits_assets.spark.probe import plan_in_spark

    rows = [(f"file:/x/{i}.jpg", f"c{i % 7}", "Training" if i < 700 else "Test") for i in range(1000)]
    rows.append(("file:/x/odd.jpg", None, None))
    schema = pa.schema([("path", pa.string()), ("label", pa.string()), ("split", pa.string())])
    for name, data in (("split", rows), ("holdout", [(p, lab, "Training") for p, lab, _ in rows])):
        path = write(tmp_path / f"{name}.parquet", schema, data)
        frame = pd.DataFrame(data, columns=["path", "label", "split"])
        for cap in (0, 20):
            reference = plan_roles(frame, seed=3, max_train_per_class=cap)
            plan, train_counts, roles = plan_in_spark(spark, [path], Location(), 3, cap)
            assert plan.counts() == reference.counts(), (name, cap)
            assert (plan.classes, plan.has_split, plan.split_rule) == (
                reference.classes,
                reference.has_split,
                reference.split_rule,
            )
            assert plan.train_thresholds == pytest.approx(reference.train_thresholds)
            assert sum(train_counts.values()) == reference.counts()["train"]
            assert roles.count() == len(data)
