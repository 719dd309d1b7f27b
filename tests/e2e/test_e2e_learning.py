"""GRPO learns the task, not only the format: the accuracy term and J&F of a few prompts rise.

A small, fast version of the quickstart's proof (``benchmarks/learning.py`` runs the real one):
a short CoT-SFT cold start on 24 synthetic videos (too short to memorise their boxes), then
GRPO with the dense grounding reward on those videos' prompts. The video evaluation runs on the
same (training) videos at step 0 and at the end, so the check is that the plumbing cues -> IoU
-> advantages -> update moves the policy's boxes towards the targets it is rewarded for;
held-out generalisation is the benchmark's job. Checked: the training accuracy term (mean of the
second half of the steps vs the first 10) and the video J&F (greedy grounding) at the end vs
step 0. Measured here (2 cores, seed 0): accuracy 0.47 -> 0.66, J&F 18.6 -> 22.6, keyframe box
IoU 0.28 -> 0.35. The total score is deliberately not checked (format terms alone can raise it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

STEPS = 60
LEARNING_RUN = [
    "recipe=quickstart",
    "cluster=local_cpu",
    "data.root=data/synthetic",
    "data.synthetic.num_videos=24",
    "data.val_fraction=0.0",
    "sft.max_steps=200",
    "trainer.run_dir=runs/learning",
    f"trainer.total_steps={STEPS}",
    "trainer.train_batch_size=8",
    "actor.ppo_mini_batch_size=8",
    "actor.optim.lr=5e-5",
    "trainer.save_freq=0",
    "trainer.val_freq=0",
    "trainer.log_samples_freq=0",
    "trainer.export_hf=false",
    f"eval.freq={STEPS}",
    "eval.dataset_split=train",
    "eval.max_videos=8",
    "tracking.wandb_mode=disabled",
]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_grpo_raises_accuracy_and_jf_on_its_training_videos(launcher, tmp_path):
    launcher.run("launch.train", *LEARNING_RUN, timeout=1200, log_name="learning.log")
    rows = _rows(tmp_path / "runs" / "learning" / "metrics.jsonl")
    start = next(r for r in rows if r["step"] == 0)
    end = next(r for r in rows if r["step"] == STEPS and "val/J&F" in r)
    train = [r["reward/accuracy"] for r in rows if r["step"] > 0]
    assert len(train) == STEPS
    # 8 prompts a step make the per-step accuracy noisy: the first 10 steps against the second half.
    first, last = float(np.mean(train[:10])), float(np.mean(train[STEPS // 2:]))
    print(f"train accuracy {first:.3f} -> {last:.3f}; J&F {start['val/J&F']:.1f} -> {end['val/J&F']:.1f}")
    assert last > first
    assert end["val/J&F"] > start["val/J&F"]
