"""The probe's numbers and row roles: pure logic, checked against scikit-learn."""

import numpy as np
import pandas as pd
import pytest

from fruits_assets.analysis.probe_metrics import evaluate, plan_roles, role_of

pytestmark = pytest.mark.fast


def test_metrics_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(3)
    labels = np.array(["Apple Braeburn", "Banana", "Clémentine", "Kiwi", "Lemon"], dtype=object)
    true = labels[rng.integers(0, 5, 400)]
    pred = np.where(rng.random(400) < 0.6, true, labels[rng.integers(0, 4, 400)])  # "Lemon" never predicted wrong
    report = evaluate(true, pred, {"Apple Braeburn": 50, "Banana": 80, "Clémentine": 10, "Kiwi": 80})
    assert report["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert report["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert report["classes"] == 4 and report["chance_uniform"] == 0.25
    assert report["majority_class"] == "Kiwi"  # tie with Banana: the later name, always the same
    assert report["majority_rate"] == pytest.approx(np.mean(true == "Kiwi"))
    assert report["eval_classes_unseen_in_training"] == ["Lemon"]
    per = {r["label"]: r for r in report["per_class"]}
    for label in labels:
        mask = true == label
        assert per[label]["accuracy"] == pytest.approx(np.mean(pred[mask] == label))
    block = report["confusion"]
    assert len(block["labels"]) == 5 and np.trace(np.array(block["counts"])) == np.sum(true == pred)


def test_roles_follow_the_splits_else_a_seeded_holdout_and_tasks_agree():
    rows = pd.DataFrame(
        {
            "path": [f"file:/x/{i}.jpg" for i in range(1000)],
            "label": [f"c{i % 7}" for i in range(1000)],
            "split": ["Training"] * 700 + ["Test"] * 300,
        }
    )
    plan = plan_roles(rows, seed=0)
    assert plan.has_split and plan.counts() == {"train": 700, "eval": 300, "unused": 0, "unlabelled": 0}

    unlabelled = pd.concat([rows, pd.DataFrame({"path": ["file:/x/odd.jpg"], "label": [None], "split": [None]})])
    assert plan_roles(unlabelled, seed=0).counts() == {"train": 700, "eval": 300, "unused": 0, "unlabelled": 1}
    assert role_of("file:/x/odd.jpg", None, None, 0, True, {}) == "unlabelled"

    capped = plan_roles(rows, seed=0, max_train_per_class=20)
    assert capped.counts()["train"] == 7 * 20 and "at most 20 training rows per class" in capped.split_rule
    # what Spark tasks decide row by row adds up to what was planned
    decided = [role_of(r.path, r.label, r.split, 0, True, capped.train_thresholds) for r in rows.itertuples()]
    assert {role: decided.count(role) for role in capped.counts()} == capped.counts()

    holdout = plan_roles(rows.assign(split="Training"), seed=0)
    assert not holdout.has_split and "seeded 80%/20% split" in holdout.split_rule
    assert 150 <= holdout.counts()["eval"] <= 250
    assert plan_roles(rows.assign(split="Training"), seed=0).counts() == holdout.counts()  # same seed, same split
    other = plan_roles(rows.assign(split="Training"), seed=1)
    assert [role_of(p, "c", "Training", 1, False, {}) for p in rows["path"]] != [
        role_of(p, "c", "Training", 0, False, {}) for p in rows["path"]
    ]
    assert other.counts()["train"] + other.counts()["eval"] == 1000
