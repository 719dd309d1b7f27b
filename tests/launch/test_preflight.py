"""Pre-flight checks (:mod:`rl.preflight`): every input a run reads is checked at start-up and in ``--dry-run``.

Before: only the existence of a few paths was checked, never in ``--dry-run``, and a
``model.path`` folder without ``config.json`` or weights, or a ``data.root`` without its
metadata, ended in a traceback minutes later inside a Ray actor.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data import synthetic_layouts as layouts
from data.readers import open_dataset
from rl.config import SyntheticConfig, load_config
from rl.preflight import dataset_problem, hf_folder_problem, preflight, sam2_config_problem
from rl.run_setup import absolutize
from tests.layout_helpers import write_every_layout

REPO = Path(__file__).resolve().parents[2]
QUICK = ["recipe=quickstart", "trainer.total_steps=3", "eval.freq=0"]
TINY = SyntheticConfig(num_videos=2, num_frames=2, height=32, width=32, max_objects=1, seed=1)


def hf_folder(path: Path, config: bool = True, weights: tuple[str, ...] = ("model.safetensors",)) -> Path:
    path.mkdir(parents=True)
    if config:
        (path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    for name in weights:
        (path / name).write_bytes(b"\0")
    return path


def cfg_of(*overrides: str):
    return absolutize(load_config([*QUICK, *overrides]))


# ------------------------------------------------------------------ single paths


def test_hf_folder_needs_config_json_and_weights(tmp_path):
    assert hf_folder_problem(str(hf_folder(tmp_path / "full"))) is None
    assert hf_folder_problem(str(hf_folder(tmp_path / "bin", weights=("pytorch_model.bin",)))) is None
    sharded = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json")
    assert hf_folder_problem(str(hf_folder(tmp_path / "sharded", weights=sharded))) is None
    assert hf_folder_problem(str(hf_folder(tmp_path / "noconfig", config=False))) == "no config.json"
    assert hf_folder_problem(str(hf_folder(tmp_path / "noweights", weights=()))).startswith("no weights")
    assert hf_folder_problem(str(hf_folder(tmp_path / "empty", config=False, weights=()))).startswith(
        "no config.json and no weights")
    assert hf_folder_problem(str(tmp_path / "absent")) == "folder does not exist"
    (tmp_path / "file").write_text("x")
    assert hf_folder_problem(str(tmp_path / "file")).startswith("not a folder")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """``{layout: root}``: a tiny synthetic data set (train + evaluation split) in each released layout."""
    return write_every_layout(tmp_path_factory, TINY)


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_a_complete_data_set_passes_and_agrees_with_its_reader(layout, datasets, tmp_path):
    root = tmp_path / layout
    shutil.copytree(datasets[layout], root)
    for split in ("train", layouts.EVAL_SPLITS[layout]):
        problem, note = dataset_problem(str(root), layout, split)
        assert problem is None and note == f"{layout}, split {split}"
        assert len(open_dataset(root, layout, split)) > 0          # the reader opens what passed
    # no frames: the reader opens the metadata, but every frame read would fail
    frames = next(p for p in root.rglob("JPEGImages") if "train" in p.relative_to(root).parts)
    shutil.rmtree(frames)
    problem, _ = dataset_problem(str(root), layout, "train")
    assert problem is not None and "JPEGImages" in problem
    # no metadata for the split: the reader fails too, and preflight names the files it looked for
    problem, _ = dataset_problem(str(root), layout, "nosuchsplit")
    assert problem.startswith(f"no {layout} meta_expressions file for split 'nosuchsplit'") and "looked for" in problem
    with pytest.raises(FileNotFoundError):
        open_dataset(root, layout, "nosuchsplit")
    assert dataset_problem(str(tmp_path / "absent"), layout, "train")[0] == "folder does not exist"


def test_sam2_config_must_be_shipped_by_the_sam2_package():
    pytest.importorskip("sam2")
    assert sam2_config_problem("configs/sam2.1/sam2.1_hiera_t.yaml") is None
    problem = sam2_config_problem("configs/sam2.1/sam2.1_hiera_huge.yaml")
    assert "not a config of the installed sam2 package" in problem and "sam2.1_hiera_t.yaml" in problem


# ------------------------------------------------------------------ the run's inputs


def test_the_quickstart_has_nothing_missing():
    """Tiny model built offline, synthetic data generated on demand: nothing to be missing."""
    report = preflight(cfg_of("eval.freq=5"))
    assert report.problems == [] and [c.key for c in report.checks] == ["data.root", "data.root"]
    assert [c.note for c in report.checks] == ["training data: synthetic, generated on demand",
                                               "evaluation data: synthetic, generated on demand"]


def test_model_path_and_data_root_are_checked(tmp_path, datasets):
    ok = hf_folder(tmp_path / "ckpt")
    report = preflight(cfg_of(f"model.path={ok}", "data.format=mevis", f"data.root={datasets['mevis']}"))
    assert report.problems == [] and {c.key for c in report.checks} == {"model.path", "data.root"}
    broken = hf_folder(tmp_path / "noconfig", config=False)
    report = preflight(cfg_of(f"model.path={broken}", "data.format=mevis", f"data.root={tmp_path / 'nodata'}"))
    assert [str(p) for p in report.problems] == [
        f"model.path = '{broken}': no config.json",
        f"data.root = '{tmp_path / 'nodata'}': folder does not exist (training data: mevis, split train)"]
    # pre-built samples replace data.root: only the samples file is read
    report = preflight(cfg_of("data.format=mevis", f"data.root={tmp_path / 'nodata'}",
                              f"data.samples_path={tmp_path / 's.jsonl'}"))
    assert [p.key for p in report.problems] == ["data.samples_path"]
    assert preflight(cfg_of(f"model.path={broken}"), training=False).problems == []


def test_the_sam2_checkpoint_is_checked_only_when_the_reward_uses_masks(tmp_path):
    from rewards.registry import mask_rewards

    sam2 = ["reward.segmenter.backend=sam2", f"reward.segmenter.checkpoint={tmp_path / 'sam2.pt'}"]
    masks, no_masks = "videoseg_r1", "visionreasoner"      # both score the quickstart's ktg samples
    assert masks in mask_rewards() and no_masks not in mask_rewards()
    keys = [p.key for p in preflight(cfg_of(f"reward.name={masks}", *sam2)).problems]
    assert keys == ["reward.segmenter.checkpoint"]
    assert preflight(cfg_of(f"reward.name={no_masks}", *sam2)).problems == []
    assert preflight(cfg_of(f"reward.name={masks}", *sam2), reward=False).problems == []   # the SFT cold start
    (tmp_path / "sam2.pt").write_bytes(b"\0")
    assert preflight(cfg_of(f"reward.name={masks}", *sam2)).problems == []


def test_every_problem_is_listed_at_once_naming_key_path_and_what(tmp_path):
    no_weights = hf_folder(tmp_path / "eval_ckpt", weights=())
    cfg = cfg_of(f"model.path={tmp_path / 'policy'}", "data.format=revos", f"data.root={tmp_path / 'revos'}",
                 "reward.name=videoseg_r1", "reward.segmenter.backend=sam2",
                 f"reward.segmenter.checkpoint={tmp_path / 'sam2.pt'}",
                 "eval.freq=5", f"eval.checkpoint={no_weights}", "eval.propagator=xmem",
                 f"eval.xmem_checkpoint={tmp_path / 'XMem.pth'}", "eval.dataset_format=mevis",
                 f"eval.dataset_root={tmp_path / 'mevis'}")
    report = preflight(cfg)
    expected = [
        ("model.path", tmp_path / "policy", "folder does not exist"),
        ("data.root", tmp_path / "revos", "folder does not exist"),
        ("reward.segmenter.checkpoint", tmp_path / "sam2.pt", "file does not exist"),
        ("eval.checkpoint", no_weights, "no weights"),
        ("eval.dataset_root", tmp_path / "mevis", "folder does not exist"),
        ("eval.xmem_checkpoint", tmp_path / "XMem.pth", "file does not exist"),
    ]
    assert [(p.key, p.path) for p in report.problems] == [(k, str(p)) for k, p, _ in expected]
    text = report.error_text()
    assert text.startswith("6 inputs are missing or incomplete:")
    for line, (key, path, what) in zip(text.splitlines()[1:], expected):
        assert line.startswith(f"  {key} = '{path}': {what}")
    # the same config without evaluation: the eval.* inputs are not read, so not checked
    assert [p.key for p in preflight(cfg, evaluation=False).problems] == [k for k, _, _ in expected[:3]]


def test_extra_evaluation_sets_are_checked_once_each(tmp_path, datasets):
    sets = (f"eval.datasets=[{{name: davis, dataset_root: {tmp_path / 'davis'}, dataset_format: davis}}, "
            f"{{name: again, dataset_split: train}}, {{name: mevis, dataset_root: {datasets['mevis']}, "
            "dataset_format: mevis, dataset_split: valid_u}]")
    report = preflight(cfg_of("eval.freq=5", sets))
    # training split and evaluation split of the synthetic data, then the two sets with their own folder
    # ("again" reads the training split: already checked)
    assert [(c.key, c.ok) for c in report.checks] == [
        ("data.root", True), ("data.root", True), ("eval.datasets[0].dataset_root", False),
        ("eval.datasets[2].dataset_root", True)]
    assert str(report.problems[0]) == (f"eval.datasets[0].dataset_root = '{tmp_path / 'davis'}': folder does not "
                                       "exist (evaluation set 'davis': davis, split valid)")
    assert preflight(cfg_of("eval.freq=5", sets), extra_sets=False).problems == []   # launch.evaluate run


# ------------------------------------------------------------------ the launchers


def test_dry_run_reports_missing_inputs_as_errors_or_with_allow_missing_as_warnings(tmp_path, capsys):
    from launch.train import main

    run = [f"trainer.run_dir={tmp_path / 'run'}", f"model.path={tmp_path / 'ckpt'}"]
    assert main(["recipe=quickstart", *run, "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "simulated placement" in out and f"MISSING  model.path = '{tmp_path / 'ckpt'}'" in out
    assert "config error: 1 missing input(s)" in err and "model.path" in err and "--allow-missing" in err
    assert main(["recipe=quickstart", *run, "--dry-run", "--allow-missing"]) == 0
    out, err = capsys.readouterr()
    assert "dry run: nothing was started" in out and err.startswith("warning: 1 missing input(s)")
    assert main(["recipe=quickstart", *run, "--allow-missing"]) == 2             # only with --dry-run
    assert "--allow-missing only applies to --dry-run" in capsys.readouterr().err
    hf_folder(tmp_path / "ckpt")
    assert main(["recipe=quickstart", *run, "--dry-run"]) == 0
    assert f"ok       model.path = '{tmp_path / 'ckpt'}'" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_unknown_arguments_stop_the_launchers_before_anything_runs(tmp_path, capsys):
    from launch import sft, train

    run = f"trainer.run_dir={tmp_path / 'run'}"
    assert train.main(["recipe=quickstart", run, "quickstart"]) == 2          # a stray word is not ignored
    assert "unknown argument(s): ['quickstart']" in capsys.readouterr().err
    assert sft.main(["recipe=quickstart", run, "--forse"]) == 2
    assert "unknown argument(s): ['--forse']" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_sweep_dry_run_checks_the_trials_inputs(tmp_path, capsys):
    from launch.sweep import main

    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(f"name: tiny\nrecipe: quickstart\nsearch: grid\ndir: {tmp_path / 'sweep'}\n"
                     "parameters:\n  actor.optim.lr: {values: [0.001]}\n"
                     f"overrides:\n  model.path: {tmp_path / 'ckpt'}\n  eval.freq: 0\n")
    assert main([f"sweep={sweep}", "--dry-run"]) == 2
    assert f"MISSING  model.path = '{tmp_path / 'ckpt'}'" in capsys.readouterr().out
    assert main([f"sweep={sweep}", "--dry-run", "--allow-missing"]) == 0
    with pytest.raises(SystemExit) as info:                     # a sweep run stops before writing or starting Ray
        main([f"sweep={sweep}"])
    assert info.value.code == 2 and "config error: model.path" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


def test_sft_and_evaluate_run_stop_before_writing_anything(tmp_path, capsys):
    from launch import evaluate, sft

    with pytest.raises(SystemExit) as info:
        sft.main(["recipe=quickstart", f"trainer.run_dir={tmp_path / 'run'}", f"model.path={tmp_path / 'ckpt'}"])
    assert info.value.code == 2 and "config error: model.path" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()                     # no sft_config.yaml, no data
    assert evaluate.main(["run", f"checkpoint={tmp_path / 'ckpt'}", f"dataset.root={tmp_path / 'mevis'}",
                          "dataset.format=mevis", f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "config error: 2 inputs are missing" in err
    assert f"eval.checkpoint = '{tmp_path / 'ckpt'}': folder does not exist" in err
    assert f"eval.dataset_root = '{tmp_path / 'mevis'}': folder does not exist" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_model_path_is_one_line_and_exit_2_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTHON"))}
    env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path), RAY_TMPDIR=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run([sys.executable, "-m", "launch.train", "recipe=quickstart", "model.path=/nonexistent/ckpt"],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "config error: model.path = '/nonexistent/ckpt': folder does not exist"], result.stderr
    assert result.stdout == "" and list(cwd.iterdir()) == []   # no runs/, no synthetic data


def test_evaluating_the_training_file_by_a_too_deep_data_root_is_caught(datasets):
    # data.root=<mevis>/train: the MeViS reader finds train/meta_expressions.json for any split, so the
    # evaluation of valid_u would silently read the training videos.
    root = datasets["mevis"]
    common = ["data.format=mevis", "eval.freq=1", "eval.dataset_split=valid_u", "eval.propagator=flow"]
    deep = preflight(cfg_of(f"data.root={root / 'train'}", *common))
    assert [c.key for c in deep.problems] == ["eval.dataset_split"]
    assert "training split's file" in deep.problems[0].problem
    assert preflight(cfg_of(f"data.root={root}", *common)).problems == []
