"""python -m rewards.score: per-line components, summary table, bad lines reported and counted."""

import io
import json
import subprocess
import sys

from rewards import score

GT = {"objects": [{"bbox_2d": [416, 7, 833, 553], "point_2d": [648, 249]}]}
GOOD = '<think>...</think><answer>[{"bbox_2d": [416,7,833,553], "point_2d": [648,249]}, {"bbox_2d": [10,100,398,423], "point_2d": [283,169]}]</answer>'


def _write(tmp_path, lines):
    path = tmp_path / "rollouts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_scores_and_summarises(tmp_path, capsys):
    path = _write(tmp_path, [
        json.dumps({"response": GOOD, "ground_truth": GT}),
        json.dumps({"response": "junk", "ground_truth": GT, "params": {"weight_non_repeat": 2.0}}),
        "{not json",
        json.dumps({"response": GOOD}),
        json.dumps({"response": GOOD, "ground_truth": {"objects": [{"bbox_2d": [1]}]}}),
        "",
    ])
    out = io.StringIO()
    status = score.run("visionreasoner", path, {}, use_models=False, quiet=False, out=out)
    text = out.getvalue()
    err = capsys.readouterr().err
    assert status == 1
    assert "line 1: score=5.5" in text and "line 2: score=2 " in text
    assert "2 scored, 3 bad line(s)" in text
    assert "line 3:" in err and "line 4:" in err and "ground_truth" in err and "line 5:" in err
    summary = text.split("bad line(s)")[1]
    row = next(line for line in summary.splitlines() if line.startswith("score"))
    assert row.split()[1:] == ["3.7500", "2.0000", "5.5000"]


def test_cli_entry_point(tmp_path):
    path = _write(tmp_path, [json.dumps({"response": "<think>x</think><answer>A</answer>", "ground_truth": {"answer": "A"}})])
    proc = subprocess.run([sys.executable, "-m", "rewards.score", "--reward", "rcot_aks", "--input", str(path),
                           "--param", "lambda_a=3", "--quiet"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "1 scored, 0 bad" in proc.stdout and "4.0000" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "rewards.score", "--reward", "rcot_aks", "--input", str(path),
                           "--param", "lambda_x=3"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "lambda_x" in proc.stderr


def test_any_exception_on_a_line_is_reported_and_the_rest_is_scored(tmp_path, capsys, monkeypatch):
    """A deeply nested line (RecursionError in the JSON parser) and a reward that crashes on one
    response (RuntimeError) are per-line errors: the other lines are scored, the summary printed."""
    real = score.compute

    def flaky(reward, response, *args, **kwargs):
        if response == "crash":
            raise RuntimeError("reward blew up")
        return real(reward, response, *args, **kwargs)

    monkeypatch.setattr(score, "compute", flaky)
    path = _write(tmp_path, [
        json.dumps({"response": GOOD, "ground_truth": GT}),
        "[" * 200_000 + "]" * 200_000,
        json.dumps({"response": "crash", "ground_truth": GT}),
        json.dumps({"response": "junk", "ground_truth": GT, "params": {"weight_non_repeat": 2.0}}),
    ])
    out = io.StringIO()
    status = score.run("visionreasoner", path, {}, use_models=False, quiet=False, out=out)
    text, err = out.getvalue(), capsys.readouterr().err
    assert status == 1
    assert "2 scored, 2 bad line(s)" in text
    assert "line 2:" in err and "RecursionError" in err
    assert "line 3:" in err and "RuntimeError: reward blew up" in err
    assert "line 1: score=5.5" in text and "line 4: score=2 " in text
    row = next(line for line in text.split("bad line(s)")[1].splitlines() if line.startswith("score"))
    assert row.split()[1:] == ["3.7500", "2.0000", "5.5000"]


def test_cli_exits_non_zero_when_a_line_fails(tmp_path):
    path = _write(tmp_path, [
        json.dumps({"response": "<think>x</think><answer>A</answer>", "ground_truth": {"answer": "A"}}),
        "[" * 200_000,
    ])
    proc = subprocess.run([sys.executable, "-m", "rewards.score", "--reward", "rcot_aks", "--input", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "1 scored, 1 bad line(s)" in proc.stdout and "line 2:" in proc.stderr
    assert "Traceback" not in proc.stderr
