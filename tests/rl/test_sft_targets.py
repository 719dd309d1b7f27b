"""``sft.targets``: the cold start trains on the built templates or on the teacher traces that
``launch.annotate cot`` kept; a file mixing KTG and AKS traces trains as one set; a checkpoint
made with one kind of target is not reused for the other."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

import rl.cold_start
import rl.models.loading
import rl.sft
from data.build import build_samples
from rl.cold_start import ensure_sft_checkpoint, stale_sft_reason
from rl.config import Config, DataConfig, SyntheticConfig, load_config, validate
from rl.run_setup import prepare_data
from rl.sft import COMPLETE_MARKER, run_sft, sft_examples, sft_settings

SYN = dict(num_videos=4, num_frames=4, height=48, width=64, seed=3)


def _teacher(text: str) -> dict:
    """A ``teacher_cot`` field as the cot job writes it."""
    return {"target": text, "score": 5.0, "max_score": 6.0, "teacher": "teacher-7b", "reward": "rcot_ktg",
            "k": 4, "passed": 2, "hints": True}


def _record(i: int, task: str = "ktg", teacher: str | None = None) -> dict:
    rec = {"id": f"syn/v{i}/0/{task}", "task": task, "prompt": "p", "images": [], "ground_truth": {},
           "sft_target": f"<think>template {i}</think><answer>[]</answer>", "split": "train"}
    if teacher is not None:
        rec["teacher_cot"] = _teacher(teacher)
    return rec


def _cfg(targets: str, run_dir: Path | None = None) -> Config:
    cfg = Config()
    cfg.sft.targets = targets
    if run_dir is not None:
        cfg.trainer.run_dir = str(run_dir)
    return cfg


def test_template_targets_are_the_built_sft_targets():
    records = [_record(0, teacher="t0"), _record(1), {**_record(2), "sft_target": ""}]
    kept, targets = sft_examples(_cfg("template"), records)
    assert [r["id"] for r in kept] == ["syn/v0/0/ktg", "syn/v1/0/ktg"]
    assert targets == ["<think>template 0</think><answer>[]</answer>", "<think>template 1</think><answer>[]</answer>"]


def test_teacher_targets_skip_samples_without_a_trace_with_one_warning(caplog):
    records = [_record(i, teacher=f"<think>trace {i}</think><answer>A</answer>" if i % 3 == 0 else None)
               for i in range(9)]
    records[6]["teacher_cot"]["target"] = "   "                       # an empty trace counts as none
    with caplog.at_level(logging.INFO, logger="rl.sft"):
        kept, targets = sft_examples(_cfg("teacher"), records)
    assert [r["id"] for r in kept] == ["syn/v0/0/ktg", "syn/v3/0/ktg"]
    assert targets == ["<think>trace 0</think><answer>A</answer>", "<think>trace 3</think><answer>A</answer>"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert text.startswith("SFT: 7 of 9 training samples carry no teacher trace")
    # the first five skipped ids are named, the rest elided
    assert "syn/v1/0/ktg, syn/v2/0/ktg, syn/v4/0/ktg, syn/v5/0/ktg, syn/v6/0/ktg, ..." in text
    assert "syn/v7/0/ktg" not in text


def test_teacher_targets_without_any_trace_name_the_cot_job():
    with pytest.raises(ValueError) as err:
        sft_examples(_cfg("teacher"), [_record(0), _record(1)])
    text = str(err.value)
    assert "none of the 2 training samples" in text
    assert "python -m launch.annotate cot" in text and "data.samples_path" in text


def test_the_cold_start_stops_before_building_a_model_or_starting_ray(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(rl.cold_start, "init_ray", lambda cfg: started.append("ray"))
    monkeypatch.setattr(rl.models.loading, "ensure_policy", lambda *a, **k: started.append("model"))
    data = SimpleNamespace(train=[_record(0), _record(1)], val=[])
    with pytest.raises(ValueError, match="launch.annotate cot"):
        ensure_sft_checkpoint(_cfg("teacher", tmp_path), data=data)
    assert started == []


def test_the_settings_record_the_target_kind(tmp_path):
    assert sft_settings(_cfg("template"))["sft.targets"] == "template"
    assert sft_settings(_cfg("teacher"))["sft.targets"] == "teacher"
    out = tmp_path / "sft"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / COMPLETE_MARKER).write_text(json.dumps({"settings": sft_settings(_cfg("template"))}))
    assert stale_sft_reason(_cfg("template"), out) is None
    assert "sft.targets: 'template' -> 'teacher'" in stale_sft_reason(_cfg("teacher"), out)


def test_a_checkpoint_recorded_before_the_key_existed_counts_as_template(tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    older = {k: v for k, v in sft_settings(_cfg("template")).items() if k != "sft.targets"}
    (out / COMPLETE_MARKER).write_text(json.dumps({"settings": older}))
    assert stale_sft_reason(_cfg("template"), out) is None          # still reused: it was trained on templates
    assert "sft.targets: 'template' -> 'teacher'" in stale_sft_reason(_cfg("teacher"), out)


# ------------------------------------------------------------------ a mixed KTG + AKS cot output


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory) -> Path:
    """Built KTG and AKS samples of one synthetic data set in one file, as the cot job writes them:
    most train records carry a teacher trace (its text names the record), a few do not."""
    tmp = tmp_path_factory.mktemp("mixed")
    records = []
    for task in ("ktg", "aks"):
        cfg = DataConfig(format="synthetic", root=str(tmp / "syn"), task=task, input_size=[56, 56],
                         synthetic=SyntheticConfig(**SYN), max_samples=6)
        build_samples(cfg, tmp / f"{task}.jsonl", progress=False)
        records += [json.loads(line) for line in (tmp / f"{task}.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert {r["task"] for r in train} == {"ktg", "aks"}
    for i, rec in enumerate(train):
        if i % 4 != 1:
            answer = "A" if rec["task"] == "aks" else "[]"
            rec["teacher_cot"] = _teacher(f"<think>teacher on {rec['id']}</think><answer>{answer}</answer>")
    path = tmp / "cot.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_a_samples_file_mixing_tasks_loads_for_the_rcot_cold_start(mixed_file):
    cfg = validate(load_config(["recipe=rcot_ktg", "profile=cpu", f"data.samples_path={mixed_file}",
                                "sft.targets=teacher"]))
    data = prepare_data(cfg)
    kept, targets = sft_examples(cfg, data.train)
    assert {r["task"] for r in kept} == {"ktg", "aks"}
    assert all(t == f"<think>teacher on {r['id']}</think><answer>{'A' if r['task'] == 'aks' else '[]'}</answer>"
               for r, t in zip(kept, targets))
    assert 0 < len(kept) < len(data.train)


class _FakeGroup:
    """Stands in for the FSDP2 policy workers: records the response text of every SFT batch."""

    world_size = 1
    batches: list[list[str]] = []

    def __init__(self, *args, **kwargs):
        from rl.models.loading import load_processor

        self.tokenizer = load_processor(kwargs["model_path"]).tokenizer

    def shard(self, encoded):
        return [encoded]

    def sft_step(self, shards, num_tokens):
        (batch,) = shards
        texts = [self.tokenizer.decode(row[mask.bool()]) for row, mask in zip(batch.responses, batch.response_mask)]
        assert num_tokens == sum(int(m.sum()) for m in batch.response_mask)
        _FakeGroup.batches.append(texts)
        return {"sft/loss": 1.0}

    def export_hf(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text("{}")

    def shutdown(self):
        pass


class _NoPlacement:
    def __init__(self, *args, **kwargs):
        pass

    def create(self):
        pass

    def remove(self):
        pass


def test_run_sft_trains_on_the_teacher_traces_of_both_tasks(mixed_file, tmp_path, monkeypatch):
    import rl.workers.policy_group
    from rl.config import TinyModelConfig
    from rl.models.tiny import build_tiny_qwen25vl

    init = build_tiny_qwen25vl(tmp_path / "tiny", TinyModelConfig(), image_size=56)
    monkeypatch.setattr(rl.workers.policy_group, "PolicyGroup", _FakeGroup)
    monkeypatch.setattr(rl.sft, "PlacementPlan", _NoPlacement)
    monkeypatch.setattr(_FakeGroup, "batches", [])
    cfg = load_config(["recipe=rcot_ktg", "profile=cpu", f"data.samples_path={mixed_file}", "sft.targets=teacher",
                       f"trainer.run_dir={tmp_path / 'run'}", "tracking.wandb_mode=disabled"])
    data = prepare_data(cfg)
    kept, targets = sft_examples(cfg, data.train)
    cfg.sft.batch_size, cfg.sft.max_steps = len(kept), 1        # one batch holding every kept sample
    out = run_sft(cfg, str(init), data.train)
    (batch,) = _FakeGroup.batches
    assert sorted(batch) == sorted(t + "<|im_end|>" for t in targets)
    assert not set(batch) & {r["sft_target"] + "<|im_end|>" for r in data.train}
    assert json.loads((out / COMPLETE_MARKER).read_text())["settings"]["sft.targets"] == "teacher"
