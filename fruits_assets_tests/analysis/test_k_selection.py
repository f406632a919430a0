import numpy as np
import pytest

from fruits_assets.analysis.k_selection import select_k

pytestmark = pytest.mark.fast


def test_smallest_k_reaching_target():
    sel = select_k([0.5, 0.3, 0.15, 0.05], target=0.95)
    assert (sel.k, sel.reached) == (3, True)
    assert sel.explained_variance == pytest.approx(0.95)


def test_float_rounding_does_not_miss_an_exact_target():
    ratios = np.full(10, 0.1)  # cumsum ends at 0.9999999999999999
    assert select_k(ratios, target=1.0).k == 10


def test_unreachable_target_is_capped_and_reported_not_k1():
    sel = select_k([0.4, 0.3, 0.1], target=0.95)  # only leading components were computed
    assert (sel.k, sel.reached) == (3, False)
    assert "not reached" in sel.reason and "0.8000" in sel.reason


def test_max_k_caps_and_reports():
    sel = select_k(np.full(100, 0.01), target=0.95, max_k=20)
    assert (sel.k, sel.reached) == (20, False)
    assert sel.explained_variance == pytest.approx(0.2)


def test_first_component_enough():
    assert select_k([0.97, 0.02, 0.01], 0.95).k == 1


@pytest.mark.parametrize(
    "ratios, target, error",
    [
        ([], 0.95, "no explained-variance"),
        ([0.5, float("nan")], 0.95, "finite"),
        ([0.5, -0.2], 0.95, "non-negative"),
        ([0.5, 0.5], 0.0, "target"),
        ([0.5, 0.5], 1.5, "target"),
    ],
)
def test_invalid_input(ratios, target, error):
    with pytest.raises(ValueError, match=error):
        select_k(ratios, target)


def test_invalid_cap():
    with pytest.raises(ValueError, match="max_k"):
        select_k([0.5, 0.5], 0.9, max_k=0)
