"""Extra evaluation sets (``eval.datasets``, verl's ``data.val_files`` as a list): each set has its own
metric keys (``val/<name>/J&F``, ...) and output folder, the main set keeps ``val/J&F``; the config
checks of the list; the driver evaluates every set at each video evaluation; ``trainer.val_only``
on a resumed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.config import load_config
from rl.eval.actor import EvalWorker, metric_prefix
from rl.schema import ConfigError
from rl.tracking import read_metrics
from tests.rl.test_rl_driver_validation import _cfg as _driver_cfg
from tests.rl.test_rl_driver_validation import _Trainer

DATA = ["data.synthetic.num_videos=2", "data.synthetic.num_frames=5", "data.synthetic.height=64",
        "data.synthetic.width=64", "data.synthetic.min_target_area=0.05"]


def _eval_cfg(tmp_path: Path, *extra: str):
    return load_config(["recipe=quickstart", "eval.progress=false", f"trainer.run_dir={tmp_path / 'run'}",
                        f"eval.dataset_root={tmp_path / 'main'}", "eval.dataset_format=synthetic", *DATA, *extra])


def test_each_set_has_its_own_metrics_and_output_folder(tmp_path):
    """No policy: GT cues and the oracle keyframe (fast). The main set has 2 videos; the extra set
    ``small`` reads another folder and at most 1 video."""
    cfg = _eval_cfg(tmp_path, f"eval.datasets=[{{name: small, dataset_root: {tmp_path / 'other'}, max_videos: 1}}]")
    worker = EvalWorker(cfg)
    main = worker.evaluate(step=3)
    small = worker.evaluate(step=3, dataset="small")

    assert main["out_dir"] == str(tmp_path / "run" / "eval" / "step_000003")
    assert small["out_dir"] == str(tmp_path / "run" / "eval" / "small" / "step_000003")
    assert main["metrics"]["val/num_videos"] == 2 and "val/J&F" in main["metrics"]
    assert all(key.startswith("val/small/") for key in small["metrics"])
    assert small["metrics"]["val/small/num_videos"] == 1
    for key in ("J", "F", "J&F"):
        assert 0.0 <= small["metrics"][f"val/small/{key}"] <= 100.0
    assert json.loads((Path(small["out_dir"]) / "summary.json").read_text())["num_videos"] == 1
    assert json.loads((Path(main["out_dir"]) / "summary.json").read_text())["num_videos"] == 2
    assert (tmp_path / "other" / "valid").is_dir()               # the extra set read (and generated) its own folder

    # The extra set is the same evaluation as a main set configured with its values.
    alone = EvalWorker(_eval_cfg(tmp_path, f"eval.dataset_root={tmp_path / 'other'}", "eval.max_videos=1",
                                 f"eval.out_dir={tmp_path / 'alone'}")).evaluate()
    assert small["metrics"]["val/small/J&F"] == pytest.approx(alone["metrics"]["val/J&F"])


def test_metric_prefix():
    assert metric_prefix() == "val/" and metric_prefix("mevis_valid_u") == "val/mevis_valid_u/"


@pytest.mark.parametrize("value, message", [
    ("[{name: a}, {name: a}]", "eval.datasets names must differ, ['a'] repeat"),
    ("[{name: referring}]", "eval.datasets[0].name 'referring' is reserved"),
    ("[{name: ''}]", "eval.datasets[0].name must be a non-empty name"),
    ("[{name: a/b}]", "eval.datasets[0].name must be a non-empty name"),
    ("[{name: a}, {name: b, max_videos: 0}]", "eval.datasets[1].max_videos must be == -1 or >= 1, got 0"),
    ("[{name: a, dataset_format: avi}]", "eval.datasets[0].dataset_format must be one of"),
])
def test_bad_sets_are_rejected_naming_the_key(value, message):
    with pytest.raises(ConfigError) as exc:
        load_config(["recipe=quickstart", f"eval.datasets={value}"])
    assert message in str(exc.value)


def test_sets_load_from_overrides_with_defaults():
    cfg = load_config(["recipe=quickstart", "eval.datasets=[{name: u, dataset_format: mevis, dataset_split: valid_u}]"])
    (item,) = cfg.eval.datasets
    assert (item.name, item.dataset_root, item.dataset_format, item.dataset_split, item.max_videos) == \
        ("u", "", "mevis", "valid_u", -1)
    assert load_config(["recipe=quickstart"]).eval.datasets == []


class _SetEvaluator:
    """Records each call; J&F = 40 + step for the main set, 10 + step for an extra set."""

    def __init__(self, trainer):
        self.trainer = trainer

    def evaluate(self, checkpoint_dir=None, step=None, dataset=None) -> dict:
        exported = checkpoint_dir is not None and (Path(checkpoint_dir) / "config.json").is_file()
        self.trainer.events.append(("eval", dataset, exported, step))
        value = 40.0 + step if dataset is None else 10.0 + step
        return {"metrics": {metric_prefix(dataset) + "J&F": value}, "images": [], "dataset": dataset}


def test_driver_evaluates_every_set_and_logs_them_side_by_side(tmp_path):
    cfg = _driver_cfg(tmp_path, "trainer.val_freq=0", "eval.datasets=[{name: small}, {name: other}]")
    trainer = _Trainer(cfg)
    trainer.evaluator = _SetEvaluator(trainer)
    trainer.fit()
    # The main set gets the exported policy; the extra sets run on the policy the evaluator then holds.
    assert [e for e in trainer.events if e[0] == "eval"] == [
        ("eval", None, True, 0), ("eval", "small", False, 0), ("eval", "other", False, 0),
        ("eval", None, True, 2), ("eval", "small", False, 2), ("eval", "other", False, 2)]
    rows = {r["step"]: r for r in read_metrics(tmp_path)}
    assert (rows[0]["val/J&F"], rows[0]["val/small/J&F"], rows[0]["val/other/J&F"]) == (40.0, 10.0, 10.0)
    assert (rows[2]["val/J&F"], rows[2]["val/small/J&F"]) == (42.0, 12.0)
    assert not (tmp_path / "eval_export").exists()           # the temporary export is removed after all sets


def test_val_only_on_a_resumed_run_validates_that_step_and_trains_nothing(tmp_path):
    """verl: validate the loaded policy at its step, log it, stop (here also when val_before_train is off)."""
    trainer = _Trainer(_driver_cfg(tmp_path, "trainer.val_only=true", "trainer.val_before_train=false"))
    trainer.global_step = 1            # as _maybe_resume leaves it after loading the checkpoint of step 1
    metrics = trainer.fit()
    assert trainer.events == [("validate", 1), ("eval", 1)]
    assert metrics["val/J&F"] == 41.0 and [r["step"] for r in read_metrics(tmp_path)] == [1]
    assert trainer.global_step == 1 and trainer.ckpt.complete_steps() == []
