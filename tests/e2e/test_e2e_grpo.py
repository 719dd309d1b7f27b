"""End-to-end GRPO on CPU: every role as a separate Ray actor, SIGKILL + resume, HF export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.prompt_loader import PromptLoader

pytestmark = pytest.mark.slow

TINY_RUN = [
    "recipe=quickstart",
    "cluster=local_cpu",                 # 2 FSDP actor ranks, 1 reference, 1 rollout, 2 reward workers
    "data.root=data/synthetic",
    "data.synthetic.num_videos=6",
    "data.synthetic.num_frames=4",
    "sft.max_steps=3",
    "trainer.run_dir=runs/e2e",
    "trainer.total_steps=6",
    "trainer.train_batch_size=4",
    "actor.ppo_mini_batch_size=2",
    "rollout.n=4",
    "rollout.max_response_length=48",
    "trainer.save_freq=2",
    "trainer.val_freq=3",
    "trainer.val_num_prompts=4",
    "trainer.log_samples_freq=1",
    "trainer.log_samples_count=16",      # every response of every step
    "tracking.wandb_mode=offline",
]
# Metrics that measure time, not the run.
_CLOCK = ("timing_s/", "timing_busy_s/", "val/timing_s/", "perf/throughput", "perf/time_per_step")


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wandb_folders(run_dir: Path, job_type: str = "grpo") -> list[Path]:
    """The run's offline W&B folders of one job type (the SFT cold start has a W&B run of its own)."""
    from rl.wandb_offline import read_offline_run

    return [p for p in (run_dir / "wandb").glob("offline-run-*") if read_offline_run(p).job_type == job_type]


def _wandb_run_ids(run_dir: Path) -> list[str]:
    return sorted({p.name.rsplit("-", 1)[-1] for p in _wandb_folders(run_dir)})


def _by_step(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        out.setdefault((row.get("table", "samples"), row["step"]), []).append(row)
    return out


def _run_numbers(run_dir: Path) -> tuple[dict[int, dict], dict[tuple[str, int], list[dict]]]:
    """Per step: the logged metrics without clock readings; the sampled responses with their rewards."""
    metrics = {r["step"]: {k: v for k, v in r.items() if not k.startswith(_CLOCK)}
               for r in _rows(run_dir / "metrics.jsonl")}
    return metrics, _by_step(_rows(run_dir / "samples.jsonl"))


def test_grpo_killed_and_resumed_continues_the_same_run(launcher, tmp_path):
    run_dir = tmp_path / "runs" / "e2e"
    first = launcher.start("launch.train", *TINY_RUN, log_name="first.log")
    # Kill (SIGKILL, whole process group incl. Ray) once step 3 is logged: checkpoint 2 exists.
    launcher.wait_for(lambda: any(r["step"] >= 3 for r in _rows(run_dir / "metrics.jsonl")), first, 900,
                      "step 3 of the first run")
    launcher.kill(first)
    first_batches = {r["step"]: r["ids"] for r in _rows(run_dir / "batches.jsonl")}
    first_ids = _wandb_run_ids(run_dir)
    assert len(first_ids) == 1
    assert (run_dir / "checkpoints" / "global_step_2" / "COMPLETE").exists()

    launcher.run("launch.train", *TINY_RUN, log_name="second.log")

    # Same step counter: every step exactly once, in order; step 0 = the starting policy's validation
    # (trainer.val_before_train), logged by the first process only (the resumed one starts at step 3).
    metrics = _rows(run_dir / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [0, 1, 2, 3, 4, 5, 6]
    assert "val/score/mean" in metrics[0] and "critic/score/mean" not in metrics[0]
    for key in ("critic/score/mean", "actor/pg_loss", "actor/kl_loss", "actor/entropy", "actor/grad_norm",
                "response_length/mean", "timing_s/gen", "timing_s/update_actor", "perf/throughput",
                "reward/think_format", "reward/accuracy"):
        assert key in metrics[-1], key
    assert "val/score/mean" in metrics[3] and "val/score/mean" in metrics[6]

    # Same data order as an uninterrupted run: the loader is a pure function of (seed, step).
    from data.build import load_samples

    train = load_samples(run_dir / "data" / "ktg.jsonl", split="train")
    loader = PromptLoader(train, batch_size=4, seed=0)
    expected = {step: [str(r["id"]) for r in loader.next_batch()] for step in range(1, 7)}
    resumed = {r["step"]: r["ids"] for r in _rows(run_dir / "batches.jsonl")}
    assert resumed == expected
    assert all(first_batches[s] == expected[s] for s in first_batches)

    # Same W&B run: the resumed process reopened the run id stored in the checkpoint.
    state = json.loads((run_dir / "checkpoints" / "global_step_6" / "trainer_state.json").read_text())
    assert _wandb_run_ids(run_dir) == first_ids == [state["wandb_run_id"]]
    assert len(_wandb_folders(run_dir)) == 2 and len(_wandb_folders(run_dir, "sft")) == 1

    # Keeps the last 2 checkpoints; the HF export loads with transformers.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["global_step_4", "global_step_6"]
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(run_dir / "export")
    assert sum(p.numel() for p in model.parameters()) > 0
    assert "resumed from" in (tmp_path / "second.log").read_text()

    # Exact resume: an uninterrupted run from the same cold start samples the same responses, gets the
    # same rewards and logs the same metrics at every step, the resumed steps 3-6 included.
    reference_dir = tmp_path / "runs" / "reference"
    launcher.run("launch.train", *TINY_RUN, f"trainer.run_dir={reference_dir}", f"model.path={run_dir / 'sft'}",
                 log_name="reference.log")
    metrics, samples = _run_numbers(run_dir)
    ref_metrics, ref_samples = _run_numbers(reference_dir)
    assert sorted(samples) == sorted(ref_samples) and len(samples[("samples", 6)]) == 16
    for key in sorted(ref_samples):
        assert samples[key] == ref_samples[key], f"responses or rewards differ at {key}"
    for step in sorted(ref_metrics):
        differing = {k for k in ref_metrics[step].keys() | metrics[step].keys()
                     if ref_metrics[step].get(k) != metrics[step].get(k)}
        assert not differing, f"step {step}: {sorted(differing)}"
