"""The evaluator Ray actor: ``val/J&F`` from a checkpoint, from weights, and with videos split over two workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rl.config import load_config
from tests.ray_helpers import local_ray_cluster

pytestmark = pytest.mark.slow

DATA = ["data.synthetic.num_videos=3", "data.synthetic.num_frames=5", "data.synthetic.height=112",
        "data.synthetic.width=112"]


@pytest.fixture
def local_ray():
    with local_ray_cluster(num_cpus=2) as ray:
        yield ray


def cfg_for(tmp_path: Path, *extra: str):
    return load_config(["recipe=quickstart", "eval.progress=false", f"trainer.run_dir={tmp_path / 'run'}",
                        f"eval.dataset_root={tmp_path / 'data'}", "eval.dataset_format=synthetic",
                        "cluster.evaluator.cpus_per_worker=1", *DATA, *extra])


def test_evaluator_actor_returns_val_metrics_from_checkpoints_and_weights(local_ray, tmp_path):
    from rl.config import TinyModelConfig
    from rl.eval.actor import Evaluator
    from rl.models.tiny import build_tiny_qwen25vl

    policy = build_tiny_qwen25vl(tmp_path / "tiny", TinyModelConfig(), image_size=112)
    cfg = cfg_for(tmp_path, "eval.sampler=first_frame", "rollout.max_response_length=24")
    evaluator = Evaluator(cfg)
    try:
        result = evaluator.evaluate(checkpoint_dir=str(policy), step=5)
        metrics = result["metrics"]
        for key in ("val/J", "val/F", "val/J&F"):
            assert 0.0 <= metrics[key] <= 100.0
        assert metrics["val/J&F"] == pytest.approx((metrics["val/J"] + metrics["val/F"]) / 2)
        assert result["out_dir"].endswith("eval/step_000005")
        assert (Path(result["out_dir"]) / "summary.json").is_file()
        assert result["summary"]["pipeline"]["checkpoint"] == str(policy)
        assert all(img.dtype == np.uint8 and img.ndim == 3 for img in (o.blended() for o in result["overlays"]))

        # The driver may also push weights (a state dict) instead of exporting a checkpoint.
        from rl.models.loading import load_policy

        weights = {k: v for k, v in load_policy(policy).state_dict().items()}
        again = evaluator.evaluate(weights=weights, step=6)
        assert "val/J&F" in again["metrics"] and again["out_dir"].endswith("step_000006")
    finally:
        evaluator.shutdown()


def test_two_workers_split_the_videos_and_agree_with_one(local_ray, tmp_path):
    from rl.eval.actor import Evaluator, EvalWorker

    cfg = cfg_for(tmp_path, "cluster.evaluator.num_workers=2", "cluster.evaluator.cpus_per_worker=0.5")
    evaluator = Evaluator(cfg)          # no policy: GT cues, oracle keyframe
    try:
        split = evaluator.evaluate(out_dir=str(tmp_path / "two"))
    finally:
        evaluator.shutdown()
    single = EvalWorker(cfg).evaluate(out_dir=str(tmp_path / "one"))       # in-process, no Ray
    assert split["summary"]["num_videos"] == single["summary"]["num_videos"] == 3
    assert split["metrics"]["val/J&F"] == pytest.approx(single["metrics"]["val/J&F"])
    assert len(split["overlays"]) <= 2 * cfg.eval.num_overlays
