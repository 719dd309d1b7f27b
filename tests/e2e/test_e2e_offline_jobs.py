"""The offline jobs feed training, end to end on CPU: synthetic KTG samples -> ``launch.annotate difficulty``
-> ``launch.annotate cot`` -> ``launch.sft sft.targets=teacher`` -> GRPO with the ``videoseg_r1`` reward.

A random tiny Qwen2.5-VL never writes a parseable rating or trace, so the rater / teacher is first taught
the two answer formats with a short ``launch.sft`` (the CPU stand-in for a capable teacher): each KTG sample
once with its built target, and once with the exact rating prompt of the ``difficulty`` job and a JSON rating
answer (low ratings for single-target queries, high for multi-target ones). That checkpoint then rates and
writes traces; a fresh tiny model is cold-started on the kept traces, and two GRPO steps read the stored D.

Checked against independent expectations: D is the mean of the stored ratings and sits in
``ground_truth.difficulty``, its level follows ``tau_easy`` / ``tau_hard``; a kept trace scores at least
threshold x max score and keeps the D fields; the cold start trains on exactly the kept traces of the
train split; GRPO reuses that cold start and its reward reports, per logged response, the stored D and
the token budget of its level; the "no task difficulty" warning counts the training samples without D.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Settings shared by every step; the videoseg_r1 reward reads the difficulty.
BASE = ["recipe=quickstart", "reward.name=videoseg_r1", "tracking.wandb_mode=disabled"]
NUM_SAMPLES = 16            # 8 synthetic videos; data.val_fraction (default) holds one video out
# The format lesson: 130 steps of 8 samples at a high learning rate make the tiny model write both formats
# reliably (a rating JSON greedily, <think>..</think><answer>..</answer> at temperature 0.7); from about 130
# steps on it also rates some multi-target queries high (100 steps: parseable, but every sample easy).
FORMAT_SFT = ["sft.max_steps=130", "sft.batch_size=8", "sft.lr=1e-2", "sft.warmup_ratio=0.05"]
EASY, HARD = [2, 3, 2, 3, 2], [8, 9, 7, 8, 8]      # D = 2.4 (easy) and 8.0 (hard) with the default thresholds
THRESHOLD, K = 0.3, 2
GRPO = ["trainer.total_steps=2", "trainer.train_batch_size=4", "actor.ppo_mini_batch_size=2", "rollout.n=4",
        "rollout.max_response_length=64", "trainer.val_freq=2", "trainer.val_num_prompts=4", "eval.freq=0",
        "trainer.save_freq=0", "trainer.export_hf=false", "trainer.log_samples_freq=1",
        "trainer.log_samples_count=1000"]
NO_D_WARNING = "training samples carry no task difficulty"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _level(d: float, tau_easy: float, tau_hard: float) -> str:
    return "easy" if d < tau_easy else "hard" if d >= tau_hard else "medium"


def _formats_file(cfg, samples: list[dict], out: Path) -> Path:
    """The KTG samples with their built targets + one rating record per sample (same images, the
    difficulty job's exact prompt, a JSON rating answer)."""
    from data.annotate.difficulty import DifficultyJob
    from data.build import write_samples

    job = DifficultyJob(cfg, "formats")
    axes = list(cfg.annotate.difficulty.axes)
    ratings = []
    for sample in samples:
        values = HARD if sample["num_targets"] > 1 else EASY
        ratings.append({**sample, "id": f"{sample['id']}/rating", "prompt": job.request(sample, 0).prompt["prompt"],
                        "sft_target": json.dumps(dict(zip(axes, values)))})
    return write_samples([*samples, *ratings], out)


def test_difficulty_and_teacher_traces_feed_the_cold_start_and_grpo(launcher, tmp_path):
    from data.build import build_samples, load_samples
    from rewards.registry import max_score
    from rl.config import load_config

    start = last = time.monotonic()

    def lap(name: str) -> None:   # stage times, shown with -s or on a failure
        nonlocal last
        now = time.monotonic()
        print(f"{name}: {now - last:.0f} s (total {now - start:.0f} s)")
        last = now

    cfg = load_config([*BASE, f"data.root={tmp_path / 'data'}", "data.synthetic.num_videos=8",
                       f"data.max_samples={NUM_SAMPLES}"])
    params = cfg.reward.params.videoseg_r1
    axes = list(cfg.annotate.difficulty.axes)
    assert _level(sum(EASY) / 5, params.tau_easy, params.tau_hard) == "easy"
    assert _level(sum(HARD) / 5, params.tau_easy, params.tau_hard) == "hard"
    ktg = tmp_path / "ktg.jsonl"
    build_samples(cfg.data, ktg, reward="videoseg_r1", progress=False)
    samples = load_samples(ktg)
    train_ids = [s["id"] for s in samples if s["split"] == "train"]
    assert len(samples) == NUM_SAMPLES and 0 < len(train_ids) < NUM_SAMPLES   # a val split for GRPO's validation
    formats = _formats_file(cfg, samples, tmp_path / "formats.jsonl")
    lap("data")

    # 1. The rater / teacher: a tiny model taught the two answer formats.
    launcher.run("launch.sft", *BASE, *FORMAT_SFT, f"data.samples_path={formats}",
                 f"trainer.run_dir={tmp_path / 'formats'}", log_name="formats.log")
    teacher = tmp_path / "formats" / "sft"
    assert (teacher / "config.json").is_file()
    lap("format_sft")

    # 2. difficulty: D = mean rating, in ground_truth.difficulty, level by the thresholds.
    common = [*BASE, f"annotate.model_path={teacher}", "annotate.max_tokens=112",
              f"trainer.run_dir={tmp_path / 'annotate_run'}"]
    out_d = tmp_path / "annotate" / "difficulty"
    launcher.run("launch.annotate", "difficulty", *common, f"annotate.inputs=[{ktg}]", f"annotate.output_dir={out_d}",
                 log_name="difficulty.log")
    summary = json.loads((out_d / "summary.json").read_text())
    rated = _rows(out_d / "difficulty.jsonl")
    assert [r["id"] for r in rated] == [s["id"] for s in samples]
    assert summary["annotated"] == NUM_SAMPLES and summary["done"] + sum(summary["failed"].values()) == NUM_SAMPLES
    assert summary["done"] > NUM_SAMPLES // 2, summary
    with_d = [r for r in rated if "difficulty" in r]
    assert len(with_d) == summary["done"]
    for row, sample in zip(rated, samples):
        if "difficulty" not in row:
            assert row == sample                                             # a failed sample is unchanged
            continue
        info = row["difficulty"]
        assert list(info["ratings"]) == axes
        assert all(type(v) is int and 1 <= v <= 10 for v in info["ratings"].values())
        assert info["D"] == pytest.approx(sum(info["ratings"].values()) / len(axes), abs=1e-12)
        assert row["ground_truth"]["difficulty"] == info["D"]
        assert info["level"] == _level(info["D"], params.tau_easy, params.tau_hard)
        assert info["rater"] == str(teacher)
        rest = {k: v for k, v in row.items() if k != "difficulty"}
        rest["ground_truth"] = {k: v for k, v in row["ground_truth"].items() if k != "difficulty"}
        assert rest == sample                                                # nothing else changed
    stored_d = {r["id"]: r["difficulty"]["D"] for r in with_d}
    # The check in GRPO below can fail: a stored D differs from the default the reward would use.
    assert any(d != params.default_difficulty for d in stored_d.values())
    lap("difficulty")

    # 3. cot on the train split: the best of K traces kept when it scores >= THRESHOLD x max score.
    out_c = tmp_path / "annotate" / "cot"
    launcher.run("launch.annotate", "cot", *common, f"annotate.inputs=[{out_d / 'difficulty.jsonl'}]",
                 f"annotate.output_dir={out_c}", f"annotate.cot.k={K}", f"annotate.cot.threshold={THRESHOLD}",
                 "annotate.cot.hints=false", "annotate.cot.temperature=0.7", "annotate.splits=[train]",
                 log_name="cot.log")
    cot_file = out_c / "cot.jsonl"
    traced = _rows(cot_file)
    summary = json.loads((out_c / "summary.json").read_text())
    assert [r["id"] for r in traced] == [r["id"] for r in rated]
    assert summary["annotated"] == len(train_ids) and summary["passed"] == NUM_SAMPLES - len(train_ids)
    top = max_score("videoseg_r1", params)
    kept = []
    for row, before in zip(traced, rated):
        cot = row.get("teacher_cot")
        if cot is None:
            assert row == before                                             # rejected / not asked: unchanged
            continue
        assert row["split"] == "train"
        assert {k: v for k, v in row.items() if k != "teacher_cot"} == before   # D fields preserved
        assert cot["target"].startswith("<think>") and cot["target"].endswith("</answer>")
        assert "</think><answer>" in cot["target"]
        assert cot["max_score"] == pytest.approx(top)
        assert THRESHOLD * top - 1e-9 <= cot["score"] <= top + 1e-9
        assert (cot["teacher"], cot["reward"], cot["k"], cot["hints"]) == (str(teacher), "videoseg_r1", K, False)
        assert 1 <= cot["passed"] <= K
        kept.append(row["id"])
    assert kept, f"no teacher trace kept: {summary}"
    assert summary["done"] == len(kept)
    lap("cot")

    # 4. The cold start of a fresh tiny model on the kept traces (train split).
    run_dir = tmp_path / "run"
    cold = [*BASE, f"data.samples_path={cot_file}", "sft.targets=teacher", f"sft.samples_path={cot_file}",
            "sft.max_steps=4", f"trainer.run_dir={run_dir}"]
    log = launcher.run("launch.sft", *cold, log_name="teacher_sft.log")
    assert f"SFT: {len(kept)} samples (teacher targets)" in log
    skipped = len(train_ids) - len(kept)
    assert (f"SFT: {skipped} of {len(train_ids)} training samples carry no teacher trace" in log) == (skipped > 0)
    marker = run_dir / "sft" / "sft_complete.json"
    assert json.loads(marker.read_text())["settings"]["sft.targets"] == "teacher"
    made = marker.stat().st_mtime_ns
    lap("teacher_sft")

    # 5. GRPO from that cold start (found, not retrained), the reward reading the stored D.
    log = launcher.run("launch.train", *cold, *GRPO, log_name="grpo.log")
    assert f"SFT checkpoint found: {run_dir / 'sft'}" in log and "not reusing the SFT checkpoint" not in log
    assert marker.stat().st_mtime_ns == made
    assert sorted({r["step"] for r in _rows(run_dir / "metrics.jsonl")}) == [0, 1, 2]
    missing = sum(1 for r in traced if r["split"] == "train" and "difficulty" not in r["ground_truth"])
    if missing:
        assert log.count(NO_D_WARNING) == 1
        assert f"{missing} of {len(train_ids)} {NO_D_WARNING}" in log
    else:
        assert NO_D_WARNING not in log
    budgets = {"easy": params.budget_easy, "medium": params.budget_medium, "hard": params.budget_hard}
    logged = _rows(run_dir / "samples.jsonl")
    train_rows = [r for r in logged if r["table"] == "samples"]
    assert len(train_rows) == 2 * 4 * 4                                      # 2 steps x 4 prompts x 4 responses
    assert {r["id"] for r in train_rows} <= set(train_ids)
    assert any(r["table"] == "val_samples" for r in logged)
    for row in logged:
        d = stored_d.get(row["id"], params.default_difficulty)
        assert row["difficulty"] == pytest.approx(d), row["id"]
        assert row["token_budget"] == budgets[_level(d, params.tau_easy, params.tau_hard)], row["id"]
    assert any(r["id"] in stored_d and stored_d[r["id"]] != params.default_difficulty for r in train_rows)
    lap("grpo")
