"""The incremental plan: pure pandas, no I/O."""

import pandas as pd
import pytest

from fruits_assets.analysis.incremental import Previous, plan

pytestmark = pytest.mark.fast


def test_plan_retries_transient_rejects_and_never_rejects_a_featurized_path():
    inventory = pd.DataFrame(
        {
            "path": ["a", "b", "c", "d"],
            "label": ["x"] * 4,
            "split": ["Training"] * 4,
            "bytes": [1] * 4,
            "fingerprint": ["1"] * 4,
        }
    )
    rejects = pd.DataFrame(
        {
            "path": ["b", "c", "d"],
            "label": ["x"] * 3,
            "split": ["Training"] * 3,
            "bytes": [1] * 3,
            "fingerprint": ["1"] * 3,
            "error": [
                "truncated or corrupt image: broken",
                "unreadable: OSError: timeout",
                "not an image: format not recognised",
            ],
        }
    )
    manifest = pd.DataFrame({"path": ["a", "d"], "fingerprint": ["1", "1"]})  # d has a feature row too
    todo = plan(inventory, Previous("uri", "m", manifest, rejects), "m", full_refresh=False)
    assert set(todo.carry_paths) == {"a", "d"}
    assert todo.carried_rejects["path"].tolist() == ["b"]  # deterministic: not retried
    assert todo.compute["path"].tolist() == ["c"]  # a transient read error: retried
