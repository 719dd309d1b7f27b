"""MetricAccumulator: benchmark aggregation (x100, ReVOS splits, no-target handling, CSV)."""

from __future__ import annotations

import csv
import math

import pytest

from rl.eval.accumulator import ExpressionScore, MetricAccumulator


def _row(video, exp_id, type_id, j, f, r=None, **counts):
    return ExpressionScore(video=video, exp_id=exp_id, type_id=type_id, j=j, f=f, r=r, num_frames=4, **counts)


def test_plain_summary_is_mean_over_expressions_x100():
    acc = MetricAccumulator()
    acc.extend([_row("a", "0", 0, 0.5, 0.25), _row("a", "1", 0, 1.0, 0.75), _row("b", "0", 0, 0.0, 0.5)])
    s = acc.summary()
    assert s["J"] == pytest.approx(50.0)
    assert s["F"] == pytest.approx(50.0)
    # J&F = mean over expressions of (J + F) / 2 = mean(37.5, 87.5, 25)
    assert s["J&F"] == pytest.approx((37.5 + 87.5 + 25.0) / 3)
    assert s["num_expressions"] == 3
    assert "R" not in s


def test_revos_splits_overall_and_no_target_excluded():
    acc = MetricAccumulator(by_type=True, with_robustness=True)
    acc.extend([
        _row("v1", "0", 0, 0.5, 0.5, r=1.0),
        _row("v1", "1", 0, 1.0, 0.5, r=0.5),      # referring: J 75, F 50, J&F 62.5, R 75
        _row("v1", "2", 1, 0.2, 0.4, r=0.9),      # reasoning (1 expression): J 20, F 40, J&F 30, R 90
        _row("v2", "0", 2, 0.0, 0.0, r=0.0),      # no target: reported, not in overall
    ])
    s = acc.summary()
    assert s["referring"]["J"] == pytest.approx(75.0)
    assert s["referring"]["F"] == pytest.approx(50.0)
    assert s["referring"]["J&F"] == pytest.approx(62.5)
    assert s["referring"]["R"] == pytest.approx(75.0)
    assert s["reasoning"]["J&F"] == pytest.approx(30.0)
    # overall = unweighted mean of the two split values (not the mean over the 3 expressions)
    assert s["overall"]["J"] == pytest.approx((75.0 + 20.0) / 2)
    assert s["overall"]["F"] == pytest.approx((50.0 + 40.0) / 2)
    assert s["overall"]["J&F"] == pytest.approx((62.5 + 30.0) / 2)
    assert s["overall"]["R"] == pytest.approx((75.0 + 90.0) / 2)
    assert s["J&F"] == s["overall"]["J&F"] and s["R"] == s["overall"]["R"]
    assert s["no_target"]["num_expressions"] == 1 and s["no_target"]["J"] == 0.0
    assert s["num_expressions"] == 3


def test_revos_missing_split_falls_back_with_note():
    acc = MetricAccumulator(by_type=True, with_robustness=True)
    acc.add(_row("v", "0", 1, 0.4, 0.6, r=1.0))
    s = acc.summary()
    assert s["referring"] is None
    assert s["J&F"] == pytest.approx(50.0)
    assert any("no referring" in note for note in s["notes"])
    empty = MetricAccumulator(by_type=True).summary()
    assert empty["J&F"] is None and empty["num_expressions"] == 0


def test_rows_are_validated():
    acc = MetricAccumulator(with_robustness=True)
    with pytest.raises(ValueError, match="r must be"):
        acc.add(_row("v", "0", 0, 0.5, 0.5))          # R missing
    with pytest.raises(ValueError, match="j must be"):
        MetricAccumulator().add(_row("v", "0", 0, 1.5, 0.5))


def test_csv_columns_and_values(tmp_path):
    acc = MetricAccumulator(by_type=True, with_robustness=True)
    acc.add(_row("v1", "3", 1, 0.5, 0.25, r=0.75, missing_frames=2, resized_frames=1))
    path = tmp_path / "per_expression.csv"
    acc.write_csv(path)
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["video", "exp_id", "type_id", "J", "F", "J&F", "R", "num_frames",
                             "missing_frames", "resized_frames", "unreadable_frames"]
    assert rows[0]["video"] == "v1" and rows[0]["exp_id"] == "3" and rows[0]["type_id"] == "1"
    assert float(rows[0]["J"]) == 50.0 and float(rows[0]["J&F"]) == 37.5 and float(rows[0]["R"]) == 75.0
    assert rows[0]["missing_frames"] == "2" and rows[0]["resized_frames"] == "1"


def test_jf_stderr_and_target_count_splits_by_hand():
    acc = MetricAccumulator()
    acc.extend([
        _row("a", "0", 0, 0.5, 0.25, num_objects=1),    # J&F 37.5
        _row("a", "1", 0, 1.0, 0.75, num_objects=2),    # J&F 87.5
        _row("b", "0", 0, 0.0, 0.5, num_objects=1),     # J&F 25
    ])
    s = acc.summary()
    # mean 50; squared deviations 156.25 + 1406.25 + 625 = 2187.5; sample var / n = 2187.5 / 2 / 3
    assert s["J&F_stderr"] == pytest.approx(math.sqrt(2187.5 / 6))
    assert s["multi_target"]["J&F"] == pytest.approx(87.5) and s["multi_target"]["num_expressions"] == 1
    assert s["multi_target"]["J&F_stderr"] is None                     # one expression: no error estimate
    assert s["single_target"]["J&F"] == pytest.approx((37.5 + 25.0) / 2)
    assert s["single_target"]["J&F_stderr"] == pytest.approx(6.25)     # std([37.5, 25]) = 8.839 / sqrt(2)
    # Rows that do not know their objects give no target split.
    plain = MetricAccumulator()
    plain.add(_row("a", "0", 0, 0.5, 0.5))
    assert "multi_target" not in plain.summary() and plain.summary()["J&F_stderr"] is None


def test_revos_overall_stderr_combines_the_split_errors():
    acc = MetricAccumulator(by_type=True)
    acc.extend([
        _row("v", "0", 0, 0.5, 0.5, num_objects=1),     # referring J&F 50
        _row("v", "1", 0, 1.0, 0.5, num_objects=1),     # referring J&F 75  -> se 12.5
        _row("v", "2", 1, 0.2, 0.4, num_objects=2),     # reasoning J&F 30
        _row("v", "3", 1, 0.6, 0.4, num_objects=3),     # reasoning J&F 50  -> se 10
        _row("v", "4", 2, 0.0, 0.0, num_objects=0),     # no target: in no split
    ])
    s = acc.summary()
    assert s["referring"]["J&F_stderr"] == pytest.approx(12.5)
    assert s["reasoning"]["J&F_stderr"] == pytest.approx(10.0)
    # overall = (ref + reas) / 2, so its error is sqrt(12.5^2 + 10^2) / 2
    assert s["J&F_stderr"] == s["overall"]["J&F_stderr"] == pytest.approx(math.sqrt(12.5 ** 2 + 10.0 ** 2) / 2)
    assert s["multi_target"]["J&F"] == pytest.approx(40.0) and s["single_target"]["J&F"] == pytest.approx(62.5)
    assert s["multi_target"]["num_expressions"] + s["single_target"]["num_expressions"] == 4
