"""The rewards' declarations are the only list of rewards: names, required keys, models, tasks and the
``reward.params`` config section are all derived from them, and one decorated class adds a reward."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

import rewards
from rewards import gt as gt_mod
from rewards import registry
from rewards.gt import GroundTruthError
from rewards.params import RewardParams
from rewards.registry import Reward, Term, register_reward

# The rewards as they were listed by hand before the declarations (independent expectations).
BUILTIN = ("visionreasoner", "segzero_strict", "rcot_ktg", "rcot_aks", "videoseg_r1", "veason_r1", "dense_grounding")
REQUIRED = {"visionreasoner": ("objects",), "rcot_ktg": ("objects",), "videoseg_r1": ("objects",),
            "segzero_strict": ("objects",), "dense_grounding": ("objects",), "rcot_aks": ("answer",),
            "veason_r1": ("frames",)}


def test_builtin_names_and_flags_match_the_former_hand_written_lists():
    assert set(rewards.REWARD_NAMES) == set(BUILTIN) and len(rewards.REWARD_NAMES) == len(BUILTIN)
    assert registry.mask_rewards() == {"videoseg_r1", "veason_r1"}
    assert registry.video_rewards() == {"veason_r1"}
    assert {name: registry.required_gt_keys(name) for name in BUILTIN} == REQUIRED
    assert set(registry.task_rewards("ktg")) == {"visionreasoner", "segzero_strict", "rcot_ktg", "videoseg_r1",
                                                 "dense_grounding"}
    assert registry.task_rewards("aks") == ("rcot_aks",) and registry.task_rewards("veason") == ("veason_r1",)


def test_builtins_are_found_by_scanning_the_package():
    assert registry.builtin_modules() == ("rewards.dense_grounding", "rewards.rcot", "rewards.segzero",
                                          "rewards.veason_r1", "rewards.videoseg_r1", "rewards.visionreasoner")
    # Module-name order, then registration order within a module (rcot: ktg before aks).
    assert rewards.REWARD_NAMES == ("dense_grounding", "rcot_ktg", "rcot_aks", "segzero_strict", "veason_r1",
                                    "videoseg_r1", "visionreasoner")


def test_scan_reads_only_decorated_top_level_modules(tmp_path):
    (tmp_path / "b_reward.py").write_text('"""x"""\n\n@register_reward("b")\nclass B:\n    pass\n')
    (tmp_path / "a_reward.py").write_text('@register_reward("a1")\nclass A1: ...\n@register_reward("a2")\n')
    (tmp_path / "helper.py").write_text('"""Use it like this::\n\n    @register_reward("x")\n"""\n')
    (tmp_path / "registry.py").write_text('@register_reward("never")\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.py").write_text('@register_reward("deep")\n')
    assert registry.scan_reward_modules(tmp_path, "pkg") == ("pkg.a_reward", "pkg.b_reward")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_appears_in_every_derived_structure(name):
    reward = registry.get_reward(name)
    # reward.params: one field per reward, holding its params dataclass with defaults.
    fields = {f.name: f for f in dataclasses.fields(RewardParams)}
    assert fields[name].type is reward.params_cls
    assert getattr(RewardParams(), name) == reward.params_cls()
    # Required keys: gt.validate names the first missing one.
    for key in reward.gt_keys:
        with pytest.raises(GroundTruthError, match=f"lacks key '{key}'") as info:
            gt_mod.validate({}, name)
        assert info.value.key == key
    # Models and tasks.
    assert (name in registry.mask_rewards()) == reward.needs_segmenter
    assert (name in registry.video_rewards()) == reward.needs_propagator
    assert reward.tasks and all(name in registry.task_rewards(t) for t in reward.tasks)


def test_data_samples_ask_the_registry_which_rewards_fit_a_task():
    from data.samples import SampleOptions, task_rewards

    assert task_rewards("aks") == ("rcot_aks",)
    with pytest.raises(ValueError, match="does not fit task"):
        SampleOptions(task="ktg", reward="rcot_aks")


def test_config_params_section_follows_the_registry_order():
    assert [f.name for f in dataclasses.fields(RewardParams)] == list(rewards.REWARD_NAMES)


def test_docs_table_is_current():
    """docs/rewards.md carries the table rendered from the declarations."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rewards.md").read_text()
    assert registry.reward_table() in doc, "regenerate it: rewards.registry.reward_table()"
    assert "| `videoseg_r1` | `VideoSegR1Params` | `objects` | ktg | segmenter | 8 |" in registry.reward_table()


def test_missing_key_is_reported_before_scoring():
    with pytest.raises(GroundTruthError, match="ground truth for 'rcot_aks' lacks key 'answer'"):
        rewards.compute("rcot_aks", "<think>x</think><answer>A</answer>", {"objects": []})


@dataclass
class _LengthParams:
    weight_length: float = 1.0


def test_a_new_reward_is_one_declaration():
    @register_reward("test_decl_length")
    class LengthReward(Reward):
        params_cls = _LengthParams
        gt_keys = ("target_length",)
        tasks = ("test_decl_task",)
        needs_segmenter = True

        def terms(self, params):
            return {"length_ok": Term(params.weight_length, 1.0)}

        def score_group(self, responses, gt, params, ctx):
            return [{"length_ok": float(len(r) == gt["target_length"])} for r in responses]

    try:
        assert "test_decl_length" in registry.reward_names()
        assert "test_decl_length" not in rewards.REWARD_NAMES            # built-ins only
        assert registry.required_gt_keys("test_decl_length") == ("target_length",)
        assert "test_decl_length" in registry.mask_rewards()
        assert "test_decl_length" not in registry.video_rewards()
        assert registry.task_rewards("test_decl_task") == ("test_decl_length",)
        assert gt_mod.validate({"target_length": 3}, "test_decl_length") == {"target_length": 3}
        with pytest.raises(GroundTruthError, match="lacks key 'target_length'"):
            gt_mod.validate({}, "test_decl_length")
        assert rewards.compute("test_decl_length", "abc", {"target_length": 3}, weight_length=2.0) == {
            "score": 2.0, "length_ok": 1.0}
        union = registry.builtin_params()
        assert "test_decl_length" not in dict(union)                      # the config section: built-ins
    finally:
        registry.REWARD_REGISTRY.pop("test_decl_length", None)


def test_declarations_are_checked_at_registration():
    class NoDataclass(Reward):
        params_cls = dict

        def terms(self, params):
            return {}

        def score_group(self, responses, gt, params, ctx):
            return []

    with pytest.raises(TypeError, match="params_cls must be a dataclass"):
        register_reward("test_decl_bad")(NoDataclass)

    class ListKeys(NoDataclass):
        params_cls = _LengthParams
        gt_keys = ["objects"]

    with pytest.raises(TypeError, match="gt_keys must be a tuple of str"):
        register_reward("test_decl_bad")(ListKeys)
    assert "test_decl_bad" not in registry.REWARD_REGISTRY


def test_ground_truth_error_keeps_its_key_when_pickled():
    import pickle

    err = pickle.loads(pickle.dumps(GroundTruthError("ground truth 'frames' is bad", key="frames")))
    assert err.key == "frames" and str(err) == "ground truth 'frames' is bad"


def test_docs_example_reward_works():
    """The example of docs/rewards.md "Adding a reward" registers and scores as documented."""
    import re
    import sys
    import types
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rewards.md").read_text()
    section = doc.split("## Adding a reward", 1)[1]
    source = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("test_docs_answer_length")
    sys.modules[module.__name__] = module
    try:
        exec(compile(source, "docs/rewards.md", "exec", dont_inherit=True), module.__dict__)
        assert registry.get_reward("answer_length").params_cls is module.AnswerLengthParams
        assert rewards.compute("answer_length", "<answer>short</answer>", {"objects": []}, weight_short=2.0) == {
            "score": 2.0, "short": 1.0}
        assert rewards.compute("answer_length", "<answer>" + "x" * 201 + "</answer>", {"objects": []})["score"] == 0
        with pytest.raises(GroundTruthError, match="lacks key 'objects'"):
            rewards.compute("answer_length", "<answer>a</answer>", {"answer": "A"})
    finally:
        registry.REWARD_REGISTRY.pop("answer_length", None)
        sys.modules.pop(module.__name__, None)
