"""Hungarian accuracy: hand-computed cases and equality with a brute-force maximum over all matchings."""

import itertools
import math

import numpy as np
import pytest

from rewards.matching import hungarian_accuracy, hungarian_max


def _obj(box, point):
    return {"bbox_2d": list(box), "point_2d": list(point)}


def _pair_score(p, g, eta, gamma_box, gamma_pt, weights):
    """Independent scalar re-implementation of Eq. 8-11 for one pair (brute-force reference)."""
    (px1, py1, px2, py2), (gx1, gy1, gx2, gy2) = p["bbox_2d"], g["bbox_2d"]
    iw = min(px2, gx2) - max(px1, gx1) + 1
    ih = min(py2, gy2) - max(py1, gy1) + 1
    inter = max(0, iw) * max(0, ih)
    union = (px2 - px1 + 1) * (py2 - py1 + 1) + (gx2 - gx1 + 1) * (gy2 - gy1 + 1) - inter
    iou = inter / union
    l1 = sum(abs(a - b) for a, b in zip(p["bbox_2d"], g["bbox_2d"])) / 4
    (x, y), (gx, gy) = p["point_2d"], g["point_2d"]
    inside = px1 <= x <= px2 and py1 <= y <= py2
    dist = math.hypot(x - gx, y - gy)
    return weights[0] * (iou > eta) + weights[1] * (l1 < gamma_box) + weights[2] * (dist < gamma_pt and inside)


def _brute_force(pred, gt, eta=0.5, gamma_box=10.0, gamma_pt=30.0, weights=(1.0, 1.0, 1.0)):
    m, n = len(pred), len(gt)
    if max(m, n) == 0:
        return float(sum(weights))
    best = 0.0
    if m <= n:
        for cols in itertools.permutations(range(n), m):
            best = max(best, sum(_pair_score(pred[i], gt[j], eta, gamma_box, gamma_pt, weights) for i, j in enumerate(cols)))
    else:
        for rows in itertools.permutations(range(m), n):
            best = max(best, sum(_pair_score(pred[i], gt[j], eta, gamma_box, gamma_pt, weights) for j, i in enumerate(rows)))
    return best / max(m, n)


def _random_objects(rng, k, base=None):
    out = []
    for i in range(k):
        if base is not None and i < len(base) and rng.random() < 0.7:
            b = np.array(base[i]["bbox_2d"]) + rng.integers(-12, 13, 4)
            b = np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
        else:
            x1, y1 = rng.integers(0, 60, 2)
            b = np.array([x1, y1, x1 + rng.integers(0, 40), y1 + rng.integers(0, 40)])
        p = [int(rng.integers(b[0] - 5, b[2] + 6)), int(rng.integers(b[1] - 5, b[3] + 6))]
        out.append(_obj([int(v) for v in b], p))
    return out


def test_hand_computed_single_pair():
    gt = [_obj([0, 0, 9, 9], [5, 5])]
    # IoU exactly 0.5 (not > 0.5), L1 = 1.25 < 10, point 3 px away and inside its box.
    assert hungarian_accuracy([_obj([0, 0, 9, 4], [5, 2])], gt) == 2.0
    # Same but the point lies outside its own predicted box.
    assert hungarian_accuracy([_obj([0, 0, 9, 4], [5, 6])], gt) == 1.0
    assert hungarian_accuracy([_obj([0, 0, 9, 9], [5, 5])], gt) == 3.0


def test_spec_worked_example_accuracy():
    gt = [_obj([416, 7, 833, 553], [648, 249])]
    pred = [_obj([416, 7, 833, 553], [648, 249]), _obj([10, 100, 398, 423], [283, 169])]
    assert hungarian_accuracy(pred, gt) == 1.5


def test_matching_is_one_to_one_and_optimal():
    # Greedy would pair pred 0 with gt 0 (3 points) leaving pred 1 with nothing; optimum gives 2 + 3.
    gt = [_obj([0, 0, 20, 20], [10, 10]), _obj([100, 100, 120, 120], [110, 110])]
    pred = [_obj([0, 0, 20, 20], [10, 10]), _obj([0, 0, 20, 20], [10, 10])]
    assert hungarian_accuracy(pred, gt) == pytest.approx(3 / 2)
    assert hungarian_accuracy(pred[:1], gt) == pytest.approx(3 / 2)
    assert hungarian_accuracy([], gt) == 0.0 and hungarian_accuracy(pred, []) == 0.0
    assert hungarian_accuracy([], []) == 3.0


def test_weights_and_thresholds():
    gt = [_obj([0, 0, 9, 9], [5, 5])]
    pred = [_obj([0, 0, 9, 4], [5, 2])]
    assert hungarian_accuracy(pred, gt, weights=(2.0, 0.5, 0.25)) == 0.75
    assert hungarian_accuracy(pred, gt, eta=0.4) == 3.0
    assert hungarian_accuracy(pred, gt, gamma_box=1.0, gamma_pt=2.0) == 0.0


def test_malformed_prediction_items_score_only_valid_subterms():
    gt = [_obj([0, 0, 9, 9], [5, 5])]
    pred = [{"bbox_2d": [0, 0, 9, 9], "point_2d": "junk"}, None, {"point_2d": [5, 5]}]
    assert hungarian_accuracy(pred, gt) == pytest.approx(2 / 3)
    assert hungarian_accuracy("not a list", gt) == 0.0
    as_numpy = [{"bbox_2d": np.array([0, 0, 9, 9]), "point_2d": np.array([5.0, 5.0])}]
    assert hungarian_accuracy(as_numpy, gt) == 3.0


@pytest.mark.parametrize("seed", range(40))
def test_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    gt = _random_objects(rng, int(rng.integers(0, 7)))
    pred = _random_objects(rng, int(rng.integers(0, 7)), base=gt)
    weights = tuple(float(w) for w in rng.choice([0.5, 1.0, 2.0], 3)) if seed % 2 else (1.0, 1.0, 1.0)
    assert hungarian_accuracy(pred, gt, weights=weights) == pytest.approx(_brute_force(pred, gt, weights=weights))


def test_hungarian_max_rectangular_and_empty():
    rows, cols, total = hungarian_max(np.array([[1.0, 5.0, 0.0], [4.0, 4.0, 1.0]]))
    assert total == 9.0 and sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    assert hungarian_max(np.zeros((0, 3)))[2] == 0.0
    assert hungarian_max(np.array([[np.nan, 1.0]]))[2] == 1.0
