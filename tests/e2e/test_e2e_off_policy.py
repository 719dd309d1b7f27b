"""End-to-end one-step off-policy GRPO (``trainer.off_policy_steps=1``) on CPU with every role a Ray
actor: staleness 1 from step 2 on, and SIGKILL + resume reproduces an uninterrupted run exactly
(the checkpoint holds the batch generated ahead).

The runs score with a reward from the user's own file (``reward.function`` +
``reward.function_kwargs``, the file outside the run's folder), so the same runs check that such a
reward reaches the reward workers and trains: every logged response carries the user's components
computed from its own text, and the step metrics are their batch means."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_e2e_grpo import _rows, _run_numbers

pytestmark = pytest.mark.slow

USER_REWARD = '''
def score(response, sample, scale=1.0):
    """The response length in characters, scaled; the training record is passed as ``sample``."""
    n = len(response)
    return {"score": scale * n / 100.0, "chars": n, "scaled_chars": scale * n,
            "has_ground_truth": "objects" in sample["ground_truth"]}
'''
BATCH = 4 * 4                            # trainer.train_batch_size x rollout.n

RUN = [
    "recipe=quickstart",
    "cluster=local_cpu",                 # 2 FSDP actor ranks, 1 reference, 1 rollout, 2 reward workers
    "data.root=data/synthetic",
    "data.synthetic.num_videos=6",
    "data.synthetic.num_frames=4",
    "sft.max_steps=3",
    "trainer.run_dir=runs/async",
    "trainer.off_policy_steps=1",
    "trainer.total_steps=5",
    "trainer.train_batch_size=4",
    "actor.ppo_mini_batch_size=2",
    "rollout.n=4",
    "rollout.max_response_length=48",
    "trainer.save_freq=2",
    "trainer.val_freq=3",                # a validation while the next batch generates
    "trainer.val_num_prompts=4",
    "trainer.val_before_train=false",
    "trainer.log_samples_freq=1",
    "trainer.log_samples_count=16",      # every response of every step
    "trainer.export_hf=false",
    "tracking.wandb_mode=disabled",
]


def _check_user_reward(metrics: dict[int, dict], samples: dict[tuple[str, int], list[dict]]) -> None:
    """Every logged response got the user's components from its own text; the metrics are their means."""
    for step in range(1, 6):
        rows = samples[("samples", step)]
        lengths = [len(r["response"]) for r in rows]
        assert len(rows) == BATCH and [r["chars"] for r in rows] == lengths
        assert [r["scaled_chars"] for r in rows] == [2.0 * n for n in lengths]      # function_kwargs.scale = 2
        assert [r["score"] for r in rows] == pytest.approx([2.0 * n / 100.0 for n in lengths])
        assert all(r["has_ground_truth"] == 1.0 for r in rows)                     # the record reached it
        assert metrics[step]["reward/scaled_chars"] == pytest.approx(2.0 * sum(lengths) / BATCH)
        assert metrics[step]["critic/score/mean"] == pytest.approx(2.0 * sum(lengths) / BATCH / 100.0)
        assert metrics[step]["reward/failed"] == 0.0
        assert "reward/accuracy" not in metrics[step]      # the built-in reward.name did not score


def test_off_policy_run_with_a_user_reward_killed_after_a_checkpoint_resumes_exactly(launcher, tmp_path):
    reward_file = tmp_path / "elsewhere" / "my_reward.py"
    reward_file.parent.mkdir()
    reward_file.write_text(USER_REWARD)
    run = [*RUN, f"reward.function={reward_file}:score", "reward.function_kwargs.scale=2"]
    run_dir = tmp_path / "runs" / "async"
    first = launcher.start("launch.train", *run, log_name="first.log")
    # Kill (SIGKILL, whole process group incl. Ray) once step 3 is logged: checkpoint 2 exists and
    # holds batch 3, generated during step 2 with the weights of step 1.
    launcher.wait_for(lambda: any(r["step"] >= 3 for r in _rows(run_dir / "metrics.jsonl")), first, 900,
                      "step 3 of the first run")
    launcher.kill(first)
    pending = json.loads((run_dir / "checkpoints" / "global_step_2" / "off_policy_batch.json").read_text())
    assert pending["step"] == 3 and pending["version"] == 1 and len(pending["response_ids"]) == 16
    assert all(len(lp) == len(ids) for lp, ids in zip(pending["rollout_log_probs"], pending["response_ids"]))

    launcher.run("launch.train", *run, log_name="second.log")
    assert "resumed the off-policy batch of step 3" in (tmp_path / "second.log").read_text()

    reference_dir = tmp_path / "runs" / "reference"
    launcher.run("launch.train", *run, f"trainer.run_dir={reference_dir}", f"model.path={run_dir / 'sft'}",
                 log_name="reference.log")
    metrics, samples = _run_numbers(run_dir)
    ref_metrics, ref_samples = _run_numbers(reference_dir)
    assert [metrics[s]["training/off_policy/trajectory_staleness/mean"] for s in range(1, 6)] == [0, 1, 1, 1, 1]
    assert "val/score/mean" in metrics[3]
    assert sorted(samples) == sorted(ref_samples) and len(samples[("samples", 5)]) == BATCH
    _check_user_reward(metrics, samples)
    for key in sorted(ref_samples):
        assert samples[key] == ref_samples[key], f"responses or rewards differ at {key}"
    for step in sorted(ref_metrics):
        differing = {k for k in ref_metrics[step].keys() | metrics[step].keys()
                     if ref_metrics[step].get(k) != metrics[step].get(k)}
        assert not differing, f"step {step}: {sorted(differing)}"
    assert [r["ids"] for r in _rows(run_dir / "batches.jsonl")] == \
        [r["ids"] for r in _rows(reference_dir / "batches.jsonl")]
