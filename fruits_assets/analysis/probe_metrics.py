"""What a linear probe's predictions say about the features: pure NumPy/pandas, no Spark, no Dagster.

The probe (:mod:`fruits_assets.spark.probe`) trains on one set of rows and predicts another;
this module decides which rows are which (deterministically, from the path and a seed) and turns
``(true label, predicted label)`` pairs into the numbers the ``feature_probe`` asset reports.
Macro-F1 follows scikit-learn's ``f1_score(average="macro")``: the mean over every label that is
true or predicted, 0 for a label never predicted right.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TRAIN_SPLIT, EVAL_SPLIT = "Training", "Test"
HOLDOUT_FRACTION = 0.2  # evaluated share when the data has no Test split
WORST_SHOWN = 10
ROLES = ("train", "eval", "unused", "unlabelled")
CONFUSION_CLASSES = 12  # the confusion plot shows the classes most often mistaken for one another


def row_hash(path: str, seed: int) -> float:
    """A number in [0, 1) fixed by the path and the seed: the same on the driver and in every
    Spark task, whatever the partitioning (Python's ``hash`` is salted per process)."""
    return zlib.crc32(f"{seed}:{path}".encode()) / 2**32


@dataclass(frozen=True)
class ProbePlan:
    """Which rows train and which are evaluated: ``role`` per path ("train", "eval", "unused")."""

    role_counts: dict  # role -> rows
    classes: list[str]  # every label, sorted: the class index is the position
    split_rule: str  # said in metadata
    has_split: bool  # Training/Test given (else the seeded holdout)
    train_thresholds: dict = field(default_factory=dict)  # label -> largest kept row_hash (capped classes)

    def counts(self) -> dict[str, int]:
        return {role: int(self.role_counts.get(role, 0)) for role in ROLES}


def plan_roles(rows: pd.DataFrame, seed: int, max_train_per_class: int = 0) -> ProbePlan:
    """The reference plan, on a pandas frame (tests hold the Spark plan, spark/probe.py, to it).
    ``rows``: path, label, split. Training trains and Test is evaluated; with no Test rows, a
    seeded 80/20 split of all rows. ``max_train_per_class`` > 0 keeps that many training rows per
    class (those with the smallest row hash: deterministic, no shuffle), the rest are unused.
    Every role comes from :func:`role_of`, the rule the Spark tasks apply to the rows they read."""
    labelled = rows["label"].notna()
    has_split = bool(
        (rows.loc[labelled, "split"] == TRAIN_SPLIT).any() and (rows.loc[labelled, "split"] == EVAL_SPLIT).any()
    )
    paths, labels, splits = rows["path"].tolist(), rows["label"].tolist(), rows["split"].tolist()
    uncapped = [role_of(p, lab, s, seed, has_split, {}) for p, lab, s in zip(paths, labels, splits)]
    thresholds: dict[str, float] = {}
    if max_train_per_class > 0:
        hashes: dict[str, list[float]] = {}
        for p, lab, role in zip(paths, labels, uncapped):
            if role == "train":
                hashes.setdefault(str(lab), []).append(row_hash(p, seed))
        # A capped class keeps the rows whose hash is at most its threshold (ties included, as in role_of).
        thresholds = {
            lab: sorted(h)[max_train_per_class - 1] for lab, h in hashes.items() if len(h) > max_train_per_class
        }
    roles = [role_of(p, lab, s, seed, has_split, thresholds) for p, lab, s in zip(paths, labels, splits)]
    rule = split_rule(has_split, seed, max_train_per_class if thresholds else 0)
    return ProbePlan(
        {role: roles.count(role) for role in ROLES},
        sorted(rows.loc[labelled, "label"].astype(str).unique()),
        rule,
        has_split,
        thresholds,
    )


def split_rule(has_split: bool, seed: int, capped_at: int) -> str:
    """The rule said in metadata (short: it is one cell of the UI's metadata table)."""
    if has_split:
        rule = f"{TRAIN_SPLIT} -> {EVAL_SPLIT}"
    else:
        share = f"{1 - HOLDOUT_FRACTION:.0%}/{HOLDOUT_FRACTION:.0%}"
        rule = f"seeded {share} split (no {TRAIN_SPLIT}/{EVAL_SPLIT}; seed {seed})"
    if capped_at:
        rule += f"; at most {capped_at} training rows per class"
    return rule


def role_of(path: str, label: str | None, split: str | None, seed: int, has_split: bool, thresholds: dict) -> str:
    """The role of one row: "train", "eval", "unused" (another split, or beyond a class's cap) or
    "unlabelled" (its folder gave no label: raw_images' layout_parsed check names it)."""
    if label is None or label != label:  # None, or NaN from pandas
        return "unlabelled"
    h = row_hash(path, seed)
    if has_split:
        role = "train" if split == TRAIN_SPLIT else "eval" if split == EVAL_SPLIT else "unused"
    else:
        role = "train" if h < 1 - HOLDOUT_FRACTION else "eval"
    if role == "train" and label in thresholds and h > thresholds[label]:
        return "unused"
    return role


def macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    labels = np.union1d(true, pred)
    if len(labels) == 0:
        return float("nan")
    scores = []
    for label in labels:
        tp = np.sum((pred == label) & (true == label))
        fp = np.sum((pred == label) & (true != label))
        fn = np.sum((pred != label) & (true == label))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def evaluate(true, pred, train_counts: dict[str, int]) -> dict:
    """The probe's numbers from the evaluated rows' labels and predictions (see :func:`evaluate_counts`)."""
    true = np.asarray(true, dtype=object).astype(str)
    pred = np.asarray(pred, dtype=object).astype(str)
    pairs: dict[tuple[str, str], int] = {}
    for t, p in zip(true, pred):
        pairs[(t, p)] = pairs.get((t, p), 0) + 1
    return evaluate_counts(pairs, train_counts)


def evaluate_counts(pairs: dict[tuple[str, str], int], train_counts: dict[str, int]) -> dict:
    """The probe's numbers from ``{(true label, predicted label): rows}`` (at most classes^2
    entries, whatever the number of rows: what the Spark tasks aggregate).

    ``train_counts``: training rows per class (the majority class and the class count come from it).
    ``accuracy`` is None when nothing was evaluated.
    """
    n = sum(pairs.values())
    n_classes = len(train_counts)
    majority = max(train_counts, key=lambda c: (train_counts[c], c)) if train_counts else None
    right = sum(k for (t, p), k in pairs.items() if t == p)
    true_rows: dict[str, int] = {}
    pred_rows: dict[str, int] = {}
    for (t, p), k in pairs.items():
        true_rows[t] = true_rows.get(t, 0) + k
        pred_rows[p] = pred_rows.get(p, 0) + k
    scores = []
    for label in sorted(set(true_rows) | set(pred_rows)):
        tp = pairs.get((label, label), 0)
        fp, fn = pred_rows.get(label, 0) - tp, true_rows.get(label, 0) - tp
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    out: dict = {
        "eval_rows": n,
        "train_rows": int(sum(train_counts.values())),
        "classes": n_classes,
        "accuracy": right / n if n else None,
        "macro_f1": float(np.mean(scores)) if n else None,
        "chance_uniform": 1.0 / n_classes if n_classes else None,
        "majority_class": majority,
        "majority_rate": true_rows.get(majority, 0) / n if n and majority is not None else None,
        "eval_classes_unseen_in_training": sorted(set(true_rows) - set(train_counts)),
    }
    per_class: list[dict[str, Any]] = []
    for label in sorted(true_rows):
        wrong = sorted(
            ((k, p) for (t, p), k in pairs.items() if t == label and p != label), key=lambda x: (-x[0], x[1])
        )
        confused, confused_n = (wrong[0][1], wrong[0][0]) if wrong else ("", 0)
        per_class.append(
            {
                "label": label,
                "rows": true_rows[label],
                "accuracy": pairs.get((label, label), 0) / true_rows[label],
                "most_confused_with": confused,
                "confused_rows": confused_n,
            }
        )
    per_class.sort(key=lambda r: (r["accuracy"], -r["rows"], r["label"]))
    out["per_class"] = per_class
    out["worst_classes"] = per_class[:WORST_SHOWN]
    out["confusion"] = confusion_block(pairs)
    return out


def confusion_block(pairs: dict[tuple[str, str], int], limit: int = CONFUSION_CLASSES) -> dict:
    """The confusion counts among the ``limit`` classes involved in the most errors (readable with
    131 classes): ``{"labels": [...], "counts": [[true x predicted]]}``; rows of other classes'
    predictions are not shown (a row's sum can be below its class's row count)."""
    errors: dict[str, int] = {}
    for (t, p), k in pairs.items():
        if t != p:
            errors[t] = errors.get(t, 0) + k
            errors[p] = errors.get(p, 0) + k
    ranked = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))
    labels = sorted(label for label, _ in ranked[:limit])
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for (t, p), k in pairs.items():
        if t in index and p in index:
            counts[index[t], index[p]] += k
    return {"labels": labels, "counts": counts.tolist()}


CHANCE_FACTOR = 5


def above_chance(report: dict) -> tuple[bool, float | None, str]:
    """(passed, threshold, why) of ``probe_above_chance``: accuracy >= 5 x chance, chance being
    the larger of the majority-class rate and 1/classes (a majority class absent from the
    evaluated rows has a rate of 0, which would let any accuracy pass)."""
    accuracy, classes = report["accuracy"], report["classes"]
    if classes < 2:
        return False, None, report.get("note") or f"{classes} class(es) in the training rows: nothing to tell apart"
    if accuracy is None:
        return False, None, f"no evaluated rows: accuracy undefined ({report.get('split_rule', '')})"
    chance = max(report["majority_rate"] or 0.0, report["chance_uniform"] or 0.0)
    threshold = min(1.0, CHANCE_FACTOR * chance)
    passed = accuracy >= threshold
    why = (
        f"accuracy {accuracy:.3f} {'>=' if passed else '<'} {CHANCE_FACTOR} x chance {chance:.3f} "
        f"(the larger of the majority-class rate {report['majority_rate']:.3f} and 1/{classes})"
    )
    return passed, threshold, why + ("" if passed else ": the features barely separate the classes")
