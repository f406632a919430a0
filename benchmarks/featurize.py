"""Featurization benchmark: the real image_features materialization vs the LiteRT ceiling vs the
OpenClassrooms P8 recipe (Keras ``predict`` in a pandas UDF), same images, same weights, one process.

    python benchmarks/featurize.py --images 4000            # pipeline, raw, keras_reference
    python benchmarks/featurize.py --images 4000 --scaling  # + local[1] vs local[2] pipeline
    python benchmarks/featurize.py --rss 1000,8000          # worker peak RSS of the pipeline per size

The last line is always the machine-readable ``featurize images=N ...`` summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------ worker memory and CPU
PROCESS_GROUPS = {"jvm": (b"org.apache.spark",), "python_workers": (b"pyspark.daemon", b"pyspark.worker")}


def spark_processes() -> Iterator[tuple[int, str]]:
    """(pid, group) of this driver ("driver_python"), the Spark JVM and Spark's Python workers."""
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            yield me, "driver_python"
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        group = next((g for g, marks in PROCESS_GROUPS.items() if any(m in cmd for m in marks)), None)
        if group:
            yield int(pid), group


class PeakRss:
    """Peak resident memory per process group (driver Python, Spark JVM, Python workers: the
    largest single process of each), polled from /proc. ``field`` VmHWM gives each process's own
    lifetime peak; VmRSS polled gives the peak while the monitor runs."""

    def __init__(self, interval: float = 0.25, field: str = "VmHWM"):
        self.interval, self.field, self.peak_kb = interval, field + ":", {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, group in spark_processes():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith(self.field):
                            self.peak_kb[group] = max(self.peak_kb.get(group, 0), int(line.split()[1]))
                except OSError:
                    pass
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def mb(self, group: str) -> int:
        return round(self.peak_kb.get(group, 0) / 1024)

    @property
    def peak_mb(self) -> float:  # of one Spark Python worker
        return self.peak_kb.get("python_workers", 0) / 1024


class CpuAccount:
    """CPU seconds spent by the Spark JVM, Spark's Python workers and this (driver) process between
    enter and exit, from /proc: where the cores' time goes, not only the wall clock."""

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for pid, group in spark_processes():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (group, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
        return out

    def __enter__(self):
        self._before = self._snapshot()
        return self

    def __exit__(self, *exc):
        self.seconds: dict[str, float] = {}
        for pid, (group, cpu) in self._snapshot().items():
            spent = cpu - self._before.get(pid, (group, 0.0))[1]
            self.seconds[group] = round(self.seconds.get(group, 0.0) + spent, 2)


# ------------------------------------------------------------ setup
def images_dir(n: int) -> Path:
    from fruits_assets.images import sample_data

    root = OUT / "images" / f"n{n}"
    sample_data.generate(root, n)
    return root


def weights_file() -> Path:
    path = OUT / "seeded.weights.h5"
    if not path.exists():
        from fruits_assets.model.keras_build import save_weights, seeded_random_model

        path.parent.mkdir(parents=True, exist_ok=True)
        save_weights(seeded_random_model(), str(path))
    return path


def spark_config(master: str) -> dict:
    from fruits_assets.defs.deployments import local_spark_config

    return dict(local_spark_config(), **{"spark.master": master})


# ------------------------------------------------------------ measurements
def side_by_side(work, extractors, shares) -> float:
    """Seconds for ``work(extractor, share)`` on every pair at once, one Python thread each
    (LiteRT's invoke and Pillow's decode release the GIL)."""
    workers = [threading.Thread(target=work, args=(e, x)) for e, x in zip(extractors, shares)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def measure_raw(model_bytes: bytes, root: Path, threads: int, limit: int = 2000, repeats: int = 2) -> float:
    """LiteRT on pre-decoded, pre-resized images: the ceiling. Best of one interpreter with
    ``threads`` threads and ``threads`` single-thread interpreters side by side (what Spark's task
    slots do), over batch sizes and repeats: this machine's speed drifts by 10-20 % between runs."""
    from fruits_assets.images.decode import load_rgb
    from fruits_assets.model.litert import LiteRTFeatureExtractor

    paths = sorted(root.rglob("*.jpg"))[:limit]
    tensors = np.stack([load_rgb(p.read_bytes()) for p in paths])
    best = 0.0
    for _ in range(repeats):
        for batch in (1, 4, 64):
            extractor = LiteRTFeatureExtractor(model_bytes, batch_size=batch, num_threads=threads)
            extractor(tensors[:64])  # warm-up: XNNPACK packs weights on first invoke
            started = time.perf_counter()
            extractor(tensors)
            rate = len(tensors) / (time.perf_counter() - started)
            log(f"raw one interpreter batch={batch} threads={threads}: {rate:.1f} img/s")
            best = max(best, rate)
        if threads > 1:  # LiteRT's invoke releases the GIL: one Python thread per interpreter
            extractors = [LiteRTFeatureExtractor(model_bytes, batch_size=1, num_threads=1) for _ in range(threads)]
            for e in extractors:
                e(tensors[:64])
            shares = np.array_split(tensors, threads)
            rate = len(tensors) / side_by_side(lambda e, x: e(x), extractors, shares)
            log(f"raw {threads} single-thread interpreters batch=1: {rate:.1f} img/s")
            best = max(best, rate)
    return best


def measure_decode_ceiling(model_bytes: bytes, root: Path, threads: int, limit: int = 2000, repeats: int = 2) -> float:
    """``raw`` plus decoding: ``threads`` single-thread interpreters side by side, each decoding
    and resizing its images from bytes already in memory. No file reads, no Spark, no parquet:
    what any pipeline that decodes could reach on this machine at best."""
    from fruits_assets.images.decode import load_rgb
    from fruits_assets.model.litert import LiteRTFeatureExtractor

    blobs = [p.read_bytes() for p in sorted(root.rglob("*.jpg"))[:limit]]
    extractors = [LiteRTFeatureExtractor(model_bytes, batch_size=1, num_threads=1) for _ in range(threads)]

    def decode_and_infer(extractor, share) -> None:
        buffer = extractor.input_buffer()
        for blob in share:
            buffer[0] = load_rgb(blob)
            extractor.run_buffer(1)

    for e in extractors:
        decode_and_infer(e, blobs[:32])  # warm-up
    best = 0.0
    for _ in range(repeats):
        shares = [blobs[i::threads] for i in range(threads)]
        best = max(best, len(blobs) / side_by_side(decode_and_infer, extractors, shares))
    log(f"decode ceiling ({threads} single-thread interpreters, decode from memory + inference): {best:.1f} img/s")
    return best


def profile_stages(model_bytes: bytes, root: Path, limit: int = 512) -> dict[str, float]:
    """Single-thread milliseconds per image of each stage, to show where time goes."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from fruits_assets.images.decode import load_rgb
    from fruits_assets.model.litert import LiteRTFeatureExtractor
    from fruits_assets.spark.featurize import FEATURES_SCHEMA

    t0 = time.perf_counter()
    blobs = [p.read_bytes() for p in sorted(root.rglob("*.jpg"))[:limit]]
    t1 = time.perf_counter()
    pixels = [load_rgb(b) for b in blobs]
    t2 = time.perf_counter()
    tensors = np.stack(pixels)
    extractor = LiteRTFeatureExtractor(model_bytes, batch_size=1, num_threads=1)
    extractor(tensors[:64])
    t3 = time.perf_counter()
    feats = extractor(tensors)
    t4 = time.perf_counter()
    n, dim = feats.shape
    pq.write_table(pa.table({"x": [1]}), io.BytesIO())  # first-use cost of the writer is not per image
    t4b = time.perf_counter()
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    names = pa.array([str(i) for i in range(n)])
    table = pa.Table.from_arrays(
        [names, names, names, pa.ListArray.from_arrays(offsets, pa.array(feats.reshape(-1)))], schema=FEATURES_SCHEMA
    )
    pq.write_table(table, io.BytesIO(), compression="snappy", use_dictionary=["path", "label", "split"])
    t5 = time.perf_counter()  # the table built, encoded and compressed as a task's PartWriter does
    return {
        "read_file_ms": 1e3 * (t1 - t0) / n,
        "decode_resize_ms": 1e3 * (t2 - t1) / n,
        "inference_ms": 1e3 * (t4 - t3) / n,
        "to_parquet_ms": 1e3 * (t5 - t4b) / n,
    }


def start_python_workers(spark) -> None:
    """Start Spark's Python worker pool (one per task slot) with the worker-side modules imported:
    part of session start-up, like the JVM, paid once per session, not per materialization."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("long")
    def touch(ids: pd.Series) -> pd.Series:
        import fruits_assets.spark.featurize  # noqa: F401 - what the real tasks import

        return ids

    slots = spark.sparkContext.defaultParallelism
    spark.range(0, slots, 1, slots).select(touch("id")).collect()


def measure_pipeline(n: int, master: str, weights: Path, options: dict | None = None) -> dict:
    """Materialize raw_images + feature_model (untimed), start Spark (timed apart), then time a real
    image_features materialization (read, decode, inference, checks, parquet written)."""
    from dagster import AssetKey, materialize

    from fruits_assets.definitions import build_definitions, local_resources

    root = images_dir(n)
    data = OUT / "data" / f"n{n}-{master.replace('local', '').strip('[]*') or 'all'}"
    resources = local_resources(str(data), str(root), spark_config(master))
    assets = list(build_definitions("local").assets)
    setup = materialize(
        assets,
        resources=resources,
        selection=[AssetKey("raw_images"), AssetKey("feature_model")],
        run_config={"ops": {"feature_model": {"config": {"weights": str(weights)}}}},
    )
    assert setup.success
    started = time.perf_counter()
    spark = resources["pyspark"].spark_session
    spark.range(1).count()
    startup = time.perf_counter() - started
    started = time.perf_counter()
    start_python_workers(spark)
    workers_startup = time.perf_counter() - started
    run_config = {"ops": {"image_features": {"config": options}}} if options else None
    selection = [AssetKey("image_features"), AssetKey("image_rejects")]
    with PeakRss(interval=0.5) as rss, CpuAccount() as cpu:
        started = time.perf_counter()
        result = materialize(assets, resources=resources, selection=selection, run_config=run_config)
        seconds = time.perf_counter() - started
    log(
        "pipeline cpu seconds: "
        + " ".join(f"{k}={v}" for k, v in sorted(cpu.seconds.items()))
        + f" (wall {seconds:.1f}s x {os.cpu_count()} cores = {seconds * (os.cpu_count() or 1):.1f} core-s)"
    )
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    # The same materialization again in the same session: JVM code paths JIT-compiled, the fixed
    # first-job costs gone. This is the per-image cost that large data sets see.
    started = time.perf_counter()
    with CpuAccount() as cpu:
        again = materialize(assets, resources=resources, selection=selection, run_config=run_config)
    warm_seconds = time.perf_counter() - started
    log(
        "steady state cpu seconds: "
        + " ".join(f"{k}={v}" for k, v in sorted(cpu.seconds.items()))
        + f" (wall {warm_seconds:.1f}s)"
    )
    assert again.success
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    count = meta["image_features"]["dagster/row_count"]
    assert count == n, f"featurized {count} of {n}"
    stages = {
        "featurize_and_write_parts_s": meta["image_features"]["featurize_seconds"],
        "checks_s": meta["image_features"]["checks_seconds"],
        "publish_features_s": meta["image_features"]["write_seconds"],
        "write_rejects_s": meta["image_rejects"]["write_seconds"],
    }
    stages["dagster_and_other_s"] = round(seconds - sum(stages.values()), 2)
    log("pipeline stages: " + " ".join(f"{k}={v}" for k, v in stages.items()))
    return {
        "img_s": n / seconds,
        "seconds": seconds,
        "startup_s": startup,
        "workers_startup_s": workers_startup,
        "features_uri": meta["image_features"]["dagster/uri"],
        "warm_img_s": n / warm_seconds,
        "worker_peak_rss_mb": rss.peak_mb,
        "stages": stages,
        "spark": spark,
    }


def measure_keras_reference(spark, root: Path, weights: Path, n: int) -> tuple[float, Path]:
    """The P8 recipe: Keras model rebuilt from broadcast weights per task, predict per Arrow batch.
    Returns images/s and where its features were written."""
    import keras

    from fruits_assets.model.keras_build import build_model

    weights_list = build_model(str(weights)).model.get_weights()
    bc = spark.sparkContext.broadcast(weights_list)
    from pyspark.sql.functions import element_at, pandas_udf, split

    @pandas_udf("array<float>")
    def featurize_udf(content_iter: Iterator[pd.Series]) -> Iterator[pd.Series]:
        import io

        from PIL import Image

        model = keras.applications.MobileNetV2(
            input_shape=(224, 224, 3), include_top=False, pooling="avg", weights=None
        )
        model.set_weights(bc.value)
        for content in content_iter:
            arrs = [
                keras.utils.img_to_array(Image.open(io.BytesIO(c)).convert("RGB").resize([224, 224])) for c in content
            ]
            preds = model.predict(keras.applications.mobilenet_v2.preprocess_input(np.stack(arrs)), verbose=0)
            yield pd.Series(list(preds))

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "1024")
    out = OUT / "data" / "keras_reference" / str(time.time_ns())
    started = time.perf_counter()
    df = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", "*.jpg")
        .option("recursiveFileLookup", "true")
        .load(str(root))
        .repartition(20)
    )
    df.select(
        "path", element_at(split("path", "/"), -2).alias("label"), featurize_udf("content").alias("features")
    ).write.parquet(str(out))
    return n / (time.perf_counter() - started), out


def feature_agreement(pipeline_uri: str, reference_dir: Path) -> tuple[int, float, float]:
    """Per-image cosine between the pipeline's features and the Keras reference's, joined on path:
    (images matched, min, mean). Both must compute the same features for the speeds to compare."""
    import pyarrow.parquet as pq

    def load(where: str) -> tuple[list[str], np.ndarray]:
        table = pq.read_table(where.removeprefix("file:"), columns=["path", "features"])
        flat = table.column("features").combine_chunks().flatten().to_numpy()
        return table.column("path").to_pylist(), flat.reshape(table.num_rows, -1)

    ours_paths, ours = load(pipeline_uri)
    ref_paths, ref = load(str(reference_dir))
    row = {p: i for i, p in enumerate(ref_paths)}
    pairs = [(i, row[p]) for i, p in enumerate(ours_paths) if p in row]
    a, b = ours[[i for i, _ in pairs]], ref[[j for _, j in pairs]]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return len(pairs), float(cosine.min()), float(cosine.mean())


def sub_run(args: list[str]) -> dict:
    """Run this script in a fresh process (fresh JVM and Python workers) and read its JSON line."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--scaling", action="store_true", help="also compare local[1] and local[2]")
    parser.add_argument("--rss", default="", help="comma-separated sizes: worker peak RSS per size")
    parser.add_argument("--pipeline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="", help="JSON run config for image_features")
    args = parser.parse_args()
    options = json.loads(args.options) if args.options else None
    weights = weights_file()

    if args.pipeline_only:
        p = measure_pipeline(args.images, args.master, weights, options)
        p.pop("spark")
        print(json.dumps(p))
        return
    if args.rss:
        for n in (int(x) for x in args.rss.split(",")):
            p = sub_run(["--pipeline-only", "--images", str(n), "--master", args.master])
            print(
                f"rss images={n} pipeline_img_s={p['img_s']:.1f} worker_peak_rss_mb={p['worker_peak_rss_mb']:.0f}",
                flush=True,
            )
        return

    from fruits_assets.model.keras_build import build_model, to_tflite

    root = images_dir(args.images)
    model_bytes = to_tflite(build_model(str(weights)).model)
    cores = os.cpu_count() or 1
    for stage, ms in profile_stages(model_bytes, root).items():
        log(f"profile {stage}={ms:.3f}")
    raw_before = measure_raw(model_bytes, root, threads=cores)
    pipeline = measure_pipeline(args.images, args.master, weights, options)
    log(
        f"pipeline {pipeline['img_s']:.1f} img/s ({pipeline['seconds']:.1f}s; not counted: Spark start-up "
        f"{pipeline['startup_s']:.1f}s, Python worker pool start {pipeline['workers_startup_s']:.1f}s)"
    )
    log(f"pipeline steady state (same materialization again, same session) {pipeline['warm_img_s']:.1f} img/s")
    raw = max(raw_before, measure_raw(model_bytes, root, threads=cores))  # the ceiling: best seen
    log(f"raw {raw:.1f} img/s")
    decode_ceiling = measure_decode_ceiling(model_bytes, root, threads=cores)
    keras_ref, keras_out = measure_keras_reference(pipeline["spark"], root, weights, args.images)
    log(f"keras_reference {keras_ref:.1f} img/s")
    matched, cos_min, cos_mean = feature_agreement(pipeline["features_uri"], keras_out)
    if matched != args.images or cos_min < 0.9999:
        log(
            f"!!! the pipeline's features differ from the Keras reference's: {matched} of {args.images} images "
            f"matched, min cosine {cos_min:.6f} < 0.9999: the speeds do not compare like with like !!!"
        )
    if args.scaling:
        # This session's idle JVM and TensorFlow-loaded workers would share the cores with the runs.
        pipeline["spark"].stop()
        # Fresh processes, alternated and best of two each: one pair of runs swings by 10 % here.
        runs: dict[str, list[dict]] = {"local[1]": [], "local[2]": []}
        for _ in range(2):
            for master, seen in runs.items():
                seen.append(sub_run(["--pipeline-only", "--images", str(args.images), "--master", master]))
                log(f"scaling run {master}: {seen[-1]['img_s']:.1f} img/s (steady {seen[-1]['warm_img_s']:.1f})")
        one, two = ({k: max(r[k] for r in runs[m]) for k in ("img_s", "warm_img_s")} for m in runs)
        print(
            f"scaling images={args.images} local1_img_s={one['img_s']:.1f} local2_img_s={two['img_s']:.1f} "
            f"local2_over_local1={two['img_s'] / one['img_s']:.2f} "
            f"steady_state_local1_img_s={one['warm_img_s']:.1f} steady_state_local2_img_s={two['warm_img_s']:.1f} "
            f"steady_state_local2_over_local1={two['warm_img_s'] / one['warm_img_s']:.2f}"
        )
    a = pipeline["img_s"]
    print(
        f"ceiling images={args.images} raw_img_s={raw:.1f} decode_ceiling_img_s={decode_ceiling:.1f} "
        f"decode_ceiling_over_raw={decode_ceiling / raw:.2f} pipeline_over_decode_ceiling={a / decode_ceiling:.2f} "
        f"pipeline_warm_over_decode_ceiling={pipeline['warm_img_s'] / decode_ceiling:.2f}"
    )
    print(
        f"agreement images={args.images} matched={matched} pipeline_vs_keras_reference_cosine_min={cos_min:.6f} "
        f"cosine_mean={cos_mean:.6f}"
    )
    print(
        f"steady_state images={args.images} pipeline_warm_img_s={pipeline['warm_img_s']:.1f} "
        f"pipeline_warm_over_raw={pipeline['warm_img_s'] / raw:.2f} "
        f"pipeline_warm_over_keras={pipeline['warm_img_s'] / keras_ref:.2f}"
    )
    print(
        f"featurize images={args.images} pipeline_img_s={a:.1f} raw_img_s={raw:.1f} "
        f"keras_reference_img_s={keras_ref:.1f} pipeline_over_raw={a / raw:.2f} "
        f"pipeline_over_keras={a / keras_ref:.2f} worker_peak_rss_mb={pipeline['worker_peak_rss_mb']:.0f}"
    )


if __name__ == "__main__":
    main()
