"""``python -m launch.export``: a kept DCP checkpoint of a run -> a HF folder, on CPU without Ray.

The checkpoints are written by a real one-rank FSDP2 PolicyWorker (``save_checkpoint``, as the
driver does) after its weights were scaled by a known factor, so every exported tensor has an
independent expectation: factor x the starting policy's tensor. The folder is loaded back with
plain transformers. Also: the files and modes of exports (this tool and the worker's own
``export_hf``), ``--step`` selection and its errors, LoRA merging.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from launch import export as export_cli
from rl.checkpoint import CheckpointManager, TrainerState
from rl.config import ActorConfig, LoraConfig, ModelConfig, SFTConfig, TinyModelConfig, load_config, to_yaml
from rl.export import ExportError, export_checkpoint, kept_steps
from rl.models.tiny import build_tiny_qwen25vl

HF_FILES = {"config.json", "generation_config.json", "model.safetensors", "chat_template.jinja",
            "processor_config.json", "tokenizer.json", "tokenizer_config.json"}
SCALES = {2: 2.0, 4: 3.0}        # step -> factor applied to every weight before that step's checkpoint


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The starting policy, made to look like an SFT checkpoint (its marker must not reach exports)."""
    path = build_tiny_qwen25vl(tmp_path_factory.mktemp("export") / "sft", TinyModelConfig(), image_size=112)
    (path / "sft_complete.json").write_text("{}")
    return path


def _base_tensors(base: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32).state_dict()


def _write_run(run_dir: Path, base: Path, *overrides: str) -> None:
    cfg = load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", f"model.path={base}", *overrides])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))


def _worker(base: Path, **kw):
    from rl.workers.policy import PolicyWorker

    return PolicyWorker(str(base), ModelConfig(dtype="float32"), ActorConfig(), **kw)


def _save(worker, manager: CheckpointManager, step: int) -> None:
    manager.begin(step)
    worker.save_checkpoint(str(manager.model_dir(step)))
    manager.finalize(step, TrainerState(step=step))


@pytest.fixture(scope="module")
def run(base, tmp_path_factory) -> Path:
    """A run with complete checkpoints at steps 2 and 4 (weights x2, then x3 of the start) and an
    interrupted save at step 6; ``final/`` is the worker's own export_hf of step 4."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    _write_run(run_dir, base, "trainer.keep_last_checkpoints=0")
    manager = CheckpointManager(run_dir, keep_last=0)
    worker = _worker(base)
    try:
        for step, scale in SCALES.items():
            _scale_worker(worker, base, scale)
            _save(worker, manager, step)
        manager.begin(6)                     # a save killed before COMPLETE
        worker.export_hf(str(run_dir / "final"))
    finally:
        worker.close()
    return run_dir


def _scale_worker(worker, base: Path, scale: float) -> None:
    """Set every parameter of the sharded worker to ``scale`` x the starting policy's value."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    start = _base_tensors(base)
    with torch.no_grad():
        for name, param in worker.model.named_parameters():
            target = start[name] * scale
            if isinstance(param, DTensor):
                target = distribute_tensor(target, param.device_mesh, param.placements)
            param.copy_(target)


def test_export_writes_every_weight_of_the_chosen_step(run, base, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert kept_steps(run) == [2, 4]
    start = _base_tensors(base)
    for step, scale in SCALES.items():
        out = export_checkpoint(run, step=step, out=tmp_path / f"step{step}")
        model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
        loaded = model.state_dict()
        assert set(loaded) == set(start)
        for name, tensor in start.items():
            torch.testing.assert_close(loaded[name], tensor * scale, rtol=0, atol=0, msg=name)
        processor = AutoProcessor.from_pretrained(out)
        assert processor.tokenizer.get_vocab() == AutoProcessor.from_pretrained(base).tokenizer.get_vocab()


def test_export_matches_the_run_s_own_export_file_for_file(run, tmp_path):
    out = export_checkpoint(run, out=tmp_path / "latest")            # default step: the newest kept (4)
    ours, theirs = load_file(out / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert set(ours) <= set(theirs)
    # save_pretrained drops a tied duplicate (lm_head = embed_tokens) only when the tensors are shared
    assert set(theirs) - set(ours) <= {"lm_head.weight"}
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert json.loads((out / "config.json").read_text()) == json.loads((run / "final" / "config.json").read_text())
    assert (out / "generation_config.json").read_text() == (run / "final" / "generation_config.json").read_text()


def test_exports_hold_only_hf_files_with_normal_modes(run, tmp_path):
    mask = _umask()
    for folder in (export_checkpoint(run, out=tmp_path / "tool"), run / "final"):
        assert {p.name for p in folder.iterdir()} == HF_FILES, folder      # no sft_complete.json / tiny_build.json
        assert _mode(folder) == 0o777 & ~mask
        for path in folder.iterdir():
            assert _mode(path) == 0o666 & ~mask, path


def test_default_output_folder_and_step(run):
    out = export_checkpoint(run)
    assert out == run / "exports" / "global_step_4"
    assert not (run / "export").exists()                          # the final export's folder is left alone
    assert {p.name for p in out.iterdir()} == HF_FILES
    with pytest.raises(ExportError, match="not empty"):
        export_checkpoint(run)
    assert export_checkpoint(run, force=True) == out


def test_cli_reports_missing_and_incomplete_steps(run, capsys, tmp_path):
    assert export_cli.main([str(run), "--step", "3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "step 3" in err and "is not kept" in err and "kept steps: 2, 4" in err
    assert export_cli.main([str(run), "--step", "6", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and "kept steps: 2, 4" in err
    assert not (tmp_path / "x").exists()
    assert export_cli.main([str(run), "--step", "2", "--out", str(tmp_path / "x")]) == 0
    assert capsys.readouterr().out.strip() == f"HF export: {tmp_path / 'x'}"


def test_no_checkpoint_and_no_starting_policy_are_explained(tmp_path, base):
    with pytest.raises(ExportError, match="no complete checkpoint"):
        export_checkpoint(tmp_path)
    run_dir = tmp_path / "moved"
    _write_run(run_dir, tmp_path / "gone")                # model.path of another machine
    manager = CheckpointManager(run_dir)
    manager.begin(1)
    manager.model_dir(1).mkdir()
    manager.finalize(1, TrainerState(step=1))
    with pytest.raises(ExportError, match="--base"):
        export_checkpoint(run_dir)


def test_lora_checkpoint_is_merged(base, tmp_path):
    """W + alpha / rank * B @ A, by hand from the adapters in the checkpoint."""
    from rl.export import read_dcp_model_state

    run_dir = tmp_path / "lora_run"
    _write_run(run_dir, base, "sft.lora.rank=2", "sft.lora.alpha=8")
    lora = LoraConfig(rank=2, alpha=8, target_modules=["q_proj"])
    worker = _worker(base, role="sft", sft_cfg=SFTConfig(lora=lora))
    try:
        with torch.no_grad():
            for name, param in worker.model.named_parameters():
                if "lora_B" in name:
                    param.fill_(0.01)            # B starts at zero: make the adapters count
        manager = CheckpointManager(run_dir)
        _save(worker, manager, 1)
    finally:
        worker.close()
    raw, state = read_dcp_model_state(manager.model_dir(1))
    assert state["uses_lora"] is True
    out = export_checkpoint(run_dir)
    merged = load_file(out / "model.safetensors")
    start = _base_tensors(base)
    prefix = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
    a, b = raw[f"{prefix}.lora_A.default.weight"], raw[f"{prefix}.lora_B.default.weight"]
    expected = start["model.language_model.layers.0.self_attn.q_proj.weight"] + 4.0 * b @ a
    torch.testing.assert_close(merged["model.layers.0.self_attn.q_proj.weight"], expected)
    assert not torch.equal(expected, start["model.language_model.layers.0.self_attn.q_proj.weight"])
    torch.testing.assert_close(merged["model.layers.0.self_attn.k_proj.weight"],
                               start["model.language_model.layers.0.self_attn.k_proj.weight"])
    assert not any("lora" in name for name in merged)
