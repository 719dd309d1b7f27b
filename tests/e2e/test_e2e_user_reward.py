"""A reward from the user's own file trains the quickstart: ``reward.function`` + ``reward.function_kwargs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USER_REWARD = '''
def score(response, sample, scale=1.0):
    """The response length in characters, scaled; the training record is passed as ``sample``."""
    n = len(response)
    return {"score": scale * n / 100.0, "chars": n, "scaled_chars": scale * n,
            "has_ground_truth": "objects" in sample["ground_truth"]}
'''


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_user_reward_from_a_file_trains_the_quickstart(launcher, tmp_path):
    reward_file = tmp_path / "elsewhere" / "my_reward.py"
    reward_file.parent.mkdir()
    reward_file.write_text(USER_REWARD)
    run_dir = tmp_path / "runs" / "user_reward"
    launcher.run("launch.train", "recipe=quickstart", "trainer.total_steps=2", "sft.max_steps=5",
                 "data.synthetic.num_videos=8", "eval.freq=0", "trainer.val_freq=0",
                 f"reward.function={reward_file}:score", "reward.function_kwargs.scale=2",
                 f"trainer.run_dir={run_dir}", "trainer.log_samples_freq=1", "trainer.log_samples_count=1000",
                 timeout=1500)

    metrics = {r["step"]: r for r in _rows(run_dir / "metrics.jsonl")}
    samples = [r for r in _rows(run_dir / "samples.jsonl") if r["table"] == "samples"]
    batch = 8 * 8                                  # quickstart: 8 prompts x 8 responses per step
    for step in (1, 2):
        rows = [r for r in samples if r["step"] == step]
        assert len(rows) == batch
        lengths = [len(r["response"]) for r in rows]
        # Every logged response got the user's components, computed from its own text.
        assert [r["chars"] for r in rows] == lengths
        assert [r["scaled_chars"] for r in rows] == [2.0 * n for n in lengths]      # function_kwargs.scale = 2
        assert [r["score"] for r in rows] == pytest.approx([2.0 * n / 100.0 for n in lengths])
        assert all(r["has_ground_truth"] == 1.0 for r in rows)                     # the record reached it
        # The step's metrics are the means over the batch of those components.
        assert metrics[step]["reward/scaled_chars"] == pytest.approx(2.0 * sum(lengths) / batch)
        assert metrics[step]["critic/score/mean"] == pytest.approx(2.0 * sum(lengths) / batch / 100.0)
        assert metrics[step]["reward/failed"] == 0.0
    assert "reward/accuracy" not in metrics[2]      # the built-in reward.name did not score
