"""The whole asset graph materialized in-process: real Spark, real LiteRT, every check evaluated."""

from pathlib import Path

import numpy as np
import pytest
from dagster import AssetCheckSeverity, AssetKey, materialize

from fruits_assets.definitions import build_definitions
from fruits_assets.defs import features, pca
from fruits_assets.defs.deployments import local_resources, local_spark_config
from fruits_assets.storage.artifacts import FeatureModelArtifact
from fruits_assets.storage.codecs import BLOB_SCHEMA, blob_table, blobs_of
from fruits_assets.storage.tables import Lake, TableError

ALL_ASSETS = [
    "raw_images",
    "feature_model",
    "image_features",
    "image_rejects",
    "pca_model",
    "image_pca",
    "feature_probe",
    "report",
]
SPARK = dict(local_spark_config(), **{"spark.master": "local[2]"})


def all_assets():
    return list(build_definitions("local").assets)


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory, dirty_images, seeded_weights):
    root, bad = dirty_images
    data = tmp_path_factory.mktemp("data")
    result = materialize(
        all_assets(),
        resources=local_resources(str(data), str(root), SPARK),
        run_config={"ops": {"feature_model": {"config": {"weights": str(seeded_weights)}}}},
    )
    return result, data, bad


def materialization(result, asset):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)]
    return event.materialization.metadata


def test_every_asset_and_check_succeeds(graph_run):
    result, _, _ = graph_run
    assert result.success
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == set(ALL_ASSETS)
    evaluations = result.get_asset_check_evaluations()
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    assert names == {
        ("raw_images", "layout_parsed"),
        ("feature_model", "pretrained_weights"),
        *(("image_features", c) for c in features.CHECKS),
        ("pca_model", "explained_variance_target"),
        *(("image_pca", c) for c in pca.CHECKS),
        ("feature_probe", "probe_above_chance"),
    }
    failed = [(e.check_name, e.metadata) for e in evaluations if not e.passed]
    assert not failed


def test_materializations_record_uri_and_row_count(graph_run):
    result, data, bad = graph_run
    lake = Lake(str(data))
    for asset in ALL_ASSETS:
        meta = materialization(result, asset)
        assert meta["dagster/uri"].value == lake.table_uri(asset)
        # The metadata states the committed version, read back from the table's log.
        assert meta["table_version"].value == lake.latest_version(asset) == 0
        assert meta["committed"].value == "version 0"
    tables = ["raw_images", "image_features", "image_rejects", "image_pca", "feature_probe"]
    counts = {a: materialization(result, a)["dagster/row_count"].value for a in tables}
    assert counts == {
        "raw_images": 100 + len(bad),
        "image_features": 100,
        "image_rejects": len(bad),
        "image_pca": 100,
        "feature_probe": 30,
    }  # the Test split
    # models are not tables: no row count (k was shown as pca_model's "Row count")
    assert all("dagster/row_count" not in materialization(result, a) for a in ("feature_model", "pca_model"))


def test_outputs_on_disk(graph_run):
    result, data, bad = graph_run
    from deltalake import DeltaTable

    features = DeltaTable(str(data / "image_features")).to_pandas()  # delta-rs alone, no package code
    assert list(features.columns) == ["path", "label", "split", "features", "fingerprint"]
    assert {len(f) for f in features["features"]} == {1280}
    assert "Apple Braeburn" in set(features["label"]) and "Clémentine" in set(features["label"])
    # Every part in the folder is committed (empty task outputs were not kept).
    committed = {Path(u).name for u in DeltaTable(str(data / "image_features")).file_uris()}
    assert {p.name for p in (data / "image_features").glob("*.parquet")} == committed

    rejects = DeltaTable(str(data / "image_rejects")).to_pandas()
    assert sorted(p.rsplit("/", 1)[1] for p in rejects["path"]) == sorted(r.rsplit("/", 1)[1] for r in bad)
    assert rejects["error"].notna().all()

    k = materialization(result, "pca_model")["k"].value
    pca = DeltaTable(str(data / "image_pca")).to_pandas()
    assert list(pca.columns) == ["path", "label", "split", "pca"] and {len(v) for v in pca["pca"]} == {k}
    assert 1 < k < 100
    assert materialization(result, "pca_model")["explained_variance"].value >= 0.95
    assert materialization(result, "pca_model")["fitted_on"].value == "Training split"
    assert "data:image/png;base64," in materialization(result, "pca_model")["cumulative_explained_variance"].value


def test_random_weights_fail_the_pretrained_check_with_warn(tmp_path, sample_images):
    result = materialize(
        [a for a in all_assets() if AssetKey("feature_model") in getattr(a, "keys", ())],
        resources=local_resources(str(tmp_path), str(sample_images), SPARK),
        run_config={"ops": {"feature_model": {"config": {"weights": "random"}}}},
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity) == ("pretrained_weights", False, AssetCheckSeverity.WARN)
    assert materialization(result, "feature_model")["weights_source"].value == "random"


def test_failed_featurization_publishes_nothing_and_leaves_no_parts(tmp_path, sample_images, seeded_weights):
    """Tasks that fail (a corrupt model file) fail the run; their staged parts are deleted and no
    image_features version is published."""
    resources = local_resources(str(tmp_path), str(sample_images), SPARK)
    setup = materialize(
        all_assets(),
        resources=resources,
        selection=[AssetKey("raw_images"), AssetKey("feature_model")],
        run_config={"ops": {"feature_model": {"config": {"weights": str(seeded_weights)}}}},
    )
    assert setup.success
    lake = Lake(str(tmp_path))
    # A model that is valid as a table but not as a flatbuffer: committed as the next version.
    bad = FeatureModelArtifact(b"not a flatbuffer" * 100, {"model_sha256": "x", "feature_dim": 1280})
    name = lake.write_file("feature_model", "part-bad-00000.parquet", blob_table(blobs_of(bad)))
    lake.commit("feature_model", BLOB_SCHEMA, [name], list(lake.snapshot("feature_model").files), 0, {})
    result = materialize(
        all_assets(),
        resources=resources,
        selection=[AssetKey("image_features"), AssetKey("image_rejects")],
        raise_on_error=False,
    )
    assert not result.success
    assert not lake.exists("image_features") and not lake.exists("image_rejects")
    # The tasks had opened their parts before loading the model: deleted, none left.
    assert not list((tmp_path / "image_features").glob("*.parquet"))
    assert not list((tmp_path / "image_rejects").glob("*.parquet"))


def published_versions(data: Path) -> dict:
    lake = Lake(str(data))
    return {a: lake.latest_version(a) for a in ALL_ASSETS}


def test_failed_blocking_check_commits_nothing(graph_run, tmp_path, sample_images):
    """Images outside <split>/<label>/<file> give 0 features: features_not_constant fails, the UI
    gets the failed check with its reason, and the failed step commits nothing: readers keep the
    last good image_features. (On a copy of the graph's tables: raw_images of this run commits.)"""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(graph_run[1], data)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, src in enumerate(sorted(sample_images.rglob("*.jpg"))[:6]):
        (flat / f"{i}_{src.name}").write_bytes(src.read_bytes())
    before = published_versions(data)
    result = materialize(
        all_assets(),
        resources=local_resources(str(data), str(flat), SPARK),
        selection=[AssetKey("raw_images"), AssetKey("image_features"), AssetKey("image_rejects")],
        raise_on_error=False,
    )
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["features_not_constant"].passed is False
    assert "0 feature rows of 6 images" in checks["features_not_constant"].description
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "image_features not committed: blocking check failed" in failure.step_failure_data.error.message
    after = published_versions(data)
    # Each step commits its own outputs: raw_images' step succeeded and committed; the failed
    # step committed nothing, readers of image_features keep the last good version.
    assert after == {**before, "raw_images": before["raw_images"] + 1}
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"raw_images"}


def test_bad_run_config_is_refused_before_any_work(graph_run, tmp_path):
    """batch_size=0 used to reject every image as 'decoder error: IndexError' after featurizing."""
    _, data, _ = graph_run
    before = published_versions(data)
    with pytest.raises(Exception) as raised:
        materialize(
            all_assets(),
            resources=local_resources(str(data), str(tmp_path), SPARK),
            run_config={"ops": {"image_features": {"config": {"batch_size": 0}}}},
        )
    chain, exc = [], raised.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("image_features.batch_size=0: Input should be greater than or equal to 1" in m for m in chain), chain
    from fruits_assets import errors

    errors._LAST_WORDS.clear()  # the CLI's last line; no CLI here to print it at exit
    assert published_versions(data) == before


def test_image_features_alone_can_be_selected(graph_run, tmp_path, dirty_images):
    """README's `--select image_features+` failed with DagsterInvalidSubsetError (multi-asset)."""
    _, data, _ = graph_run
    root, _ = dirty_images
    before = published_versions(data)
    result = materialize(
        all_assets(), resources=local_resources(str(data), str(root), SPARK), selection=[AssetKey("image_features")]
    )
    assert result.success
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"image_features"}
    # The same images: nothing to featurize, no commit; the metadata says which version stands.
    assert published_versions(data) == before
    meta = materialization(result, "image_features")
    assert meta["committed"].value == f"unchanged: version {before['image_features']} still holds"


def test_image_pca_equals_numpy_svd_per_row(graph_run):
    """The moments-based PCA gives, per row, what a NumPy SVD of the same Training rows gives
    (centred, components with the largest loading positive), within float32 tolerance."""
    import numpy as np

    from fruits_assets.analysis.pca import load_npz

    _, data, _ = graph_run
    from deltalake import DeltaTable

    features = DeltaTable(str(data / "image_features")).to_pandas().sort_values("path", ignore_index=True)
    pca = DeltaTable(str(data / "image_pca")).to_pandas().sort_values("path", ignore_index=True)
    # pca.npz is NumPy's format inside the model table: readable without this package.
    blobs = dict(DeltaTable(str(data / "pca_model")).to_pandas()[["name", "content"]].values)
    model = load_npz(blobs["pca.npz"], blobs["pca.json"])
    assert list(pca["path"]) == list(features["path"])
    x = np.stack(features["features"].to_numpy()).astype(np.float64)
    train = x[(features["split"] == "Training").to_numpy()]
    mean = train.mean(axis=0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    k = model.k
    ratios = s**2 / (s**2).sum()
    assert k == int(np.searchsorted(np.cumsum(ratios), 0.95 - 1e-9) + 1)
    np.testing.assert_allclose(model.explained_variance_ratio[:k], ratios[:k], rtol=1e-4, atol=1e-7)
    vt = vt[:k] * np.sign(vt[np.arange(k), np.argmax(np.abs(vt[:k]), axis=1)])[:, None]
    expected = (x - mean) @ vt.T
    got = np.stack(pca["pca"].to_numpy())
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale, rtol=1e-3)


def test_feature_model_is_reused_when_nothing_changed(graph_run, seeded_weights, tmp_path):
    """Same weights setting, code and TF/Keras: the stored flatbuffer is re-emitted without a Keras
    build or conversion; another weights file is built anew."""
    _, data, _ = graph_run
    lake = Lake(str(data))
    before = lake.latest_version("feature_model")
    resources = local_resources(str(data), str(tmp_path), SPARK)
    again = materialize(
        all_assets(),
        resources=resources,
        selection=[AssetKey("feature_model")],
        run_config={"ops": {"feature_model": {"config": {"weights": str(seeded_weights)}}}},
    )
    meta = materialization(again, "feature_model")
    assert meta["reused"].value is True and meta["reused_from_version"].value == before
    assert meta["build_seconds"].value < 2
    # The same bytes: nothing written again, the committed version stands.
    assert lake.latest_version("feature_model") == before and meta["table_version"].value == before


def test_build_key_changes_with_weights_and_code(seeded_weights, tmp_path, monkeypatch):
    from fruits_assets.model import keras_build as keras_model

    same = keras_model.build_key(str(seeded_weights))
    assert keras_model.build_key(str(seeded_weights)) == same
    other = tmp_path / "other.weights.h5"
    other.write_bytes(Path(seeded_weights).read_bytes() + b"\0")  # same path shape, other bytes
    assert keras_model.build_key(str(other)) != same
    assert keras_model.build_key("random") != same
    monkeypatch.setattr(keras_model, "MODEL_CODE_VERSION", "changed-preprocessing")
    assert keras_model.build_key(str(seeded_weights)) != same


def test_catalog_loads_published_outputs_without_the_layout(graph_run):
    import duckdb
    from deltalake import DeltaTable

    from fruits_assets.storage import catalog

    _, data, _ = graph_run
    root = str(data)
    pca = catalog.load("image_pca", root=root)
    assert list(pca.columns) == ["path", "label", "split", "pca"]
    assert sorted(pca["path"]) == sorted(DeltaTable(str(data / "image_pca")).to_pandas()["path"])
    # DuckDB reads the same table through its delta extension (the PyPI package, loaded by path).
    con = duckdb.connect()
    con.execute(f"LOAD '{delta_extension()}'")
    rows = con.execute(f"SELECT path, len(pca) FROM delta_scan('{data / 'image_pca'}')").fetchall()
    assert sorted(p for p, _ in rows) == sorted(pca["path"]) and {n for _, n in rows} == {len(pca["pca"][0])}
    model = catalog.load("pca_model", root=root)
    assert model.k == len(pca["pca"][0]) and model.project(np.zeros((1, 1280), np.float32)).shape == (1, model.k)
    kept = catalog.versions("image_features", root=root)
    assert kept[0] == Lake(root).latest_version("image_features")
    assert len(catalog.load("image_features", version=kept[-1], root=root)) > 0
    tflite, provenance = catalog.load("feature_model", root=root)
    assert tflite[:8] and provenance["feature_dim"] == 1280
    with pytest.raises(ValueError, match="unknown asset 'nope'"):
        catalog.load("nope", root=root)
    with pytest.raises(TableError, match="image_pca: table .* cannot be read at version 99"):
        catalog.load("image_pca", version=99, root=root)


def delta_extension() -> str:
    import duckdb_extension_delta

    [path] = Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension")
    return str(path)


def test_feature_probe_agrees_with_a_scikit_learn_recomputation(graph_run):
    """The probe's numbers recomputed from the same rows: its metadata equals scikit-learn's
    metrics on its own predictions, and scikit-learn's logistic regression with the same objective
    (standardized inputs, L2 weight 1/(n * reg_param)) trained on the same Training rows predicts
    the same classes on the Test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    from fruits_assets.defs.run_config import ProbeConfig
    from fruits_assets.storage import catalog

    result, data, _ = graph_run
    meta = materialization(result, "feature_probe")
    probe, pca = catalog.load("feature_probe", root=str(data)), catalog.load("image_pca", root=str(data))
    train, test = pca[pca["split"] == "Training"], pca[pca["split"] == "Test"]
    assert (meta["train_rows"].value, meta["eval_rows"].value) == (len(train), len(test)) == (70, 30)
    assert sorted(probe["path"]) == sorted(test["path"])
    assert meta["accuracy"].value == round(accuracy_score(probe["label"], probe["predicted"]), 4)
    assert meta["macro_f1"].value == round(f1_score(probe["label"], probe["predicted"], average="macro"), 4)
    assert meta["classes"].value == 10 and meta["chance_uniform"].value == 0.1
    majority = train["label"].value_counts().sort_index(ascending=False).idxmax()  # ties: as the probe breaks them
    assert meta["majority_class_rate"].value == round(float((test["label"] == majority).mean()), 4)

    scaler = StandardScaler().fit(np.stack(train["pca"]))
    reg = ProbeConfig().reg_param
    sk = LogisticRegression(C=1 / (len(train) * reg), max_iter=10_000, tol=1e-10)
    sk.fit(scaler.transform(np.stack(train["pca"])), train["label"])
    ours = probe.set_index("path").loc[test["path"], "predicted"].to_numpy()
    theirs = sk.predict(scaler.transform(np.stack(test["pca"])))
    assert np.mean(ours == theirs) >= 0.9, (ours, theirs)
    assert abs(meta["accuracy"].value - accuracy_score(test["label"], theirs)) <= 0.1

    report = catalog.probe_report(root=str(data))
    worst = report["worst_classes"]
    assert len(worst) == 10 and [w["accuracy"] for w in worst] == sorted(w["accuracy"] for w in worst)
    for w in worst:
        rows = probe[probe["label"] == w["label"]]
        assert w["accuracy"] == pytest.approx(rows["correct"].mean())
        wrong = rows.loc[~rows["correct"], "predicted"]
        assert w["confused_rows"] == (wrong.value_counts().max() if len(wrong) else 0)
    assert catalog.figure("feature_probe", "confusion.png", root=str(data))[:8] == b"\x89PNG\r\n\x1a\n"


def test_explore_notebook_runs_headless_on_the_published_graph(graph_run, monkeypatch):
    """notebooks/explore.ipynb executed by a real kernel against the freshly materialized graph:
    any cell error fails the test (nbclient raises CellExecutionError)."""
    import nbformat
    from nbclient import NotebookClient

    from fruits_assets.storage import catalog

    _, data, _ = graph_run
    monkeypatch.setenv("FRUITS_DATA_ROOT", str(data))  # what `make notebook`'s kernel gets
    monkeypatch.setenv("FRUITS_DEPLOYMENT", "local")
    notebook = nbformat.read(Path(__file__).resolve().parents[2] / "notebooks" / "explore.ipynb", as_version=4)
    assert notebook.metadata.kernelspec.name == "fruits-assets"
    # the project kernel is this interpreter: `python3` of this venv stands for it here
    NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(data)}}).execute()
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert f"Delta tables under {data} (newest versions)" in text and "100 images with features, 10 classes" in text
    report = catalog.probe_report(root=str(data))
    assert f"accuracy from the predictions: {report['accuracy']:.4f}" in text
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 5  # class counts, variance curve, scatter, confusion, neighbours


def test_readme_python_examples_run_as_written(graph_run, monkeypatch, capsys):
    """Every ```python block of the README runs unchanged against a materialized graph."""
    import re

    _, data, _ = graph_run
    monkeypatch.setenv("FRUITS_DATA_ROOT", str(data))
    monkeypatch.setenv("FRUITS_DEPLOYMENT", "local")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "images projected on" in capsys.readouterr().out


def test_report_notebook_ran_on_the_runs_outputs(graph_run):
    """The report asset executed the explore notebook on this run's outputs: figures embedded,
    no error, and the UI's notebook link points at the stored file."""
    import nbformat

    result, data, _ = graph_run
    meta = materialization(result, "report")
    assert meta["figures"].value >= 4
    path = meta["notebook"].value
    assert path.endswith(".ipynb") and Path(path).is_file()
    notebook = nbformat.read(path, as_version=4)
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "RANDOM weights" not in text  # the seeded weights file counts as a weights file
    assert "100 images with features" in text
