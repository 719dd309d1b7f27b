"""User rewards from a file (``reward.function`` + ``reward.function_kwargs``) and the start-up dry call."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rewards import compute
from rewards.config import RewardConfig
from rewards.errors import InvalidSampleError, RewardConfigError, RewardOutputError
from rewards.scorer import RewardScorer, check_reward_config, dry_run, probe_samples, with_resolved_function
from rewards.user import load_user_reward, resolve_spec

GT = {"objects": [{"bbox_2d": [10, 10, 40, 40], "point_2d": [25, 25]}]}
KTG = {"id": "synthetic/v0/e0/ktg", "task": "ktg", "ground_truth": GT, "query": "the red square",
       "sft_target": '<think>x</think><answer>[{"bbox_2d": [10, 10, 40, 40], "point_2d": [25, 25]}]</answer>'}
AKS = {"id": "synthetic/v1/e0/aks/A", "task": "aks", "ground_truth": {"answer": "A"}}

USER_FILE = '''
from dataclasses import dataclass

from rewards.registry import Reward, Term


def score(response, sample, scale=1.0):
    n = len(response)
    return {"score": scale * n, "chars": n, "has_objects": "objects" in sample["ground_truth"]}


def no_score(response, sample):
    return {"total": 1.0}


def not_finite(response, sample):
    return {"score": float("nan")}


def reserved(response, sample):
    return {"score": 1.0, "reward_failed": 0.0}


def not_a_dict(response, sample):
    return 1.0


def reads_a_field(response, sample):
    return {"score": float(sample["ground_truth"]["answer"] == "A")}


def crashes(response, sample):
    return {"score": 1 / 0}


VALUE = 3


@dataclass
class ExactParams:
    weight: float = 1.0


class Exact(Reward):
    params_cls = ExactParams
    gt_keys = ("answer",)

    def terms(self, params):
        return {"exact": Term(params.weight, 1.0)}

    def score_group(self, responses, gt, params, ctx):
        return [{"exact": float(r.strip() == gt["answer"])} for r in responses]
'''


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_reward.py"
    path.write_text(textwrap.dedent(USER_FILE))
    return path


def _cfg(function: str = "", name: str = "visionreasoner", **kwargs) -> RewardConfig:
    return RewardConfig(name=name, function=function, function_kwargs=kwargs)


# ------------------------------------------------------------------ loading


def test_function_scores_each_response_with_its_kwargs(user_file):
    scorer = RewardScorer.from_config(_cfg(f"{user_file}:score", scale=2))
    rows = scorer.score_group(["ab", "abcd"], KTG, [1, 2])
    assert rows == [{"score": 4.0, "chars": 2.0, "has_objects": 1.0}, {"score": 8.0, "chars": 4.0, "has_objects": 1.0}]


def test_reward_subclass_from_a_file_combines_its_terms(user_file):
    scorer = RewardScorer.from_config(_cfg(f"{user_file}:Exact", weight=3.0))
    assert scorer.score_group(["A", " B"], AKS) == [{"score": 3.0, "exact": 1.0}, {"score": 0.0, "exact": 0.0}]
    with pytest.raises(RewardConfigError, match="weight"):
        RewardScorer.from_config(_cfg(f"{user_file}:Exact", weight="high"))


def test_builtin_scorer_equals_compute():
    scorer = RewardScorer.from_config(_cfg(name="visionreasoner"), build_models=False)
    response = KTG["sft_target"]
    assert scorer.score_group([response], KTG, [30]) == [compute("visionreasoner", response, GT)]
    assert scorer.score_group([response], GT) == [compute("visionreasoner", response, GT)]   # bare ground truth


def test_loader_errors_name_the_setting(user_file, tmp_path):
    cases = {
        f"{tmp_path}/absent.py:score": "does not exist",
        f"{user_file}:nothing": "defines no 'nothing'",
        f"{user_file}:VALUE": "is a int, not a function",
        f"{user_file}": "must be 'path/to/file.py:name'",
        "score": "must be 'path/to/file.py:name'",
    }
    for spec, message in cases.items():
        with pytest.raises(RewardConfigError, match=message) as info:
            load_user_reward(spec)
        assert "reward.function" in str(info.value)
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    with pytest.raises(RewardConfigError, match="importing .* failed: ModuleNotFoundError"):
        load_user_reward(f"{broken}:f")


def test_kwargs_the_function_does_not_take_are_a_config_error(user_file):
    with pytest.raises(RewardConfigError, match="function_kwargs.*'scael'|scael"):
        RewardScorer.from_config(_cfg(f"{user_file}:score", scael=2))
    with pytest.raises(RewardConfigError, match="reward.function is empty"):
        RewardScorer.from_config(_cfg("", scale=2))


@pytest.mark.parametrize("name, message", [
    ("no_score", "without 'score'"),
    ("not_finite", "finite number"),
    ("reserved", "reward_failed"),
    ("not_a_dict", "returned a float"),
])
def test_wrong_return_keys_are_invalid(user_file, name, message):
    scorer = RewardScorer.from_config(_cfg(f"{user_file}:{name}"))
    with pytest.raises(InvalidSampleError, match=message) as info:
        scorer.score_group(["x"], KTG)
    assert isinstance(info.value.__cause__, RewardOutputError)
    assert info.value.sample_id == KTG["id"]


def test_config_validation_reports_the_function_key(user_file):
    assert list(_cfg(f"{user_file}:score", scale=2).validate()) == []
    problems = list(_cfg(f"{user_file}:nothing").validate())
    assert [key for key, _ in problems] == ["function"] and "defines no 'nothing'" in problems[0][1]
    with pytest.raises(RewardConfigError, match="on_invalid_sample"):
        check_reward_config(RewardConfig(on_invalid_sample="ignore"))
    with pytest.raises(RewardConfigError, match="reward.name = 'nope'"):
        check_reward_config(RewardConfig(name="nope"))


def test_relative_path_is_resolved_against_the_current_folder(user_file, monkeypatch):
    monkeypatch.chdir(user_file.parent)
    cfg = with_resolved_function(_cfg("my_reward.py:score"))
    assert cfg.function == f"{user_file.resolve()}:score"
    assert resolve_spec("") == "" and with_resolved_function(_cfg()).function == ""


# ------------------------------------------------------------------ dry call


def test_dry_call_names_reward_sample_and_missing_key():
    with pytest.raises(InvalidSampleError) as info:
        dry_run(_cfg(name="rcot_aks"), [KTG])
    err = info.value
    assert (err.reward, err.sample_id, err.key) == ("reward 'rcot_aks'", "synthetic/v0/e0/ktg", "answer")
    assert str(err) == ("reward 'rcot_aks' cannot score sample 'synthetic/v0/e0/ktg': "
                        "ground truth for 'rcot_aks' lacks key 'answer'")


def test_dry_call_names_a_user_functions_missing_sample_field(user_file):
    with pytest.raises(InvalidSampleError) as info:
        dry_run(_cfg(f"{user_file}:reads_a_field"), [AKS, KTG])
    assert info.value.sample_id == KTG["id"] and info.value.key == "answer"
    assert "reward.function" in str(info.value) and "missing key 'answer'" in str(info.value)


def test_dry_call_reports_a_crashing_user_function(user_file):
    with pytest.raises(RewardOutputError, match=r"reward.function .*crashes.* failed on sample "
                                                r"'synthetic/v0/e0/ktg': ZeroDivisionError"):
        dry_run(_cfg(f"{user_file}:crashes"), [KTG])


def test_dry_call_checks_the_ground_truth_in_full():
    bad = dict(KTG, ground_truth={"objects": [{"bbox_2d": [1, 2, 3], "point_2d": [1, 1]}]})
    with pytest.raises(InvalidSampleError, match=r"objects\[0\].bbox_2d"):
        dry_run(_cfg(name="visionreasoner"), [bad])


def test_dry_call_passes_fitting_samples(user_file):
    dry_run(_cfg(name="visionreasoner"), [KTG])
    dry_run(_cfg(name="rcot_aks"), [AKS])
    dry_run(_cfg(f"{user_file}:score", scale=2), [KTG, AKS])


def test_probe_samples_takes_the_first_of_each_task_per_list():
    second_ktg = dict(KTG, id="synthetic/v2/e0/ktg")
    assert probe_samples([KTG, second_ktg, AKS], [second_ktg]) == [KTG, AKS, second_ktg]


def test_run_config_takes_any_function_kwargs_key(user_file):
    from rl.config import load_config
    from rl.schema import ConfigError

    cfg = load_config([f"reward.function={user_file}:score", "reward.function_kwargs.scale=2"])
    assert cfg.reward.function_kwargs == {"scale": 2} and cfg.reward.on_invalid_sample == "error"
    with pytest.raises(ConfigError, match="reward.function = .*defines no 'nothing'"):
        load_config([f"reward.function={user_file}:nothing"])
    with pytest.raises(ConfigError, match="unknown config key 'reward.nope'"):
        load_config(["reward.nope=1"])                      # the rest of the section stays strict


def test_dry_call_of_a_mask_reward_scores_without_models_quietly(caplog):
    from rewards.vision import resolve

    before = resolve.SKIP_COUNTS.copy()
    with caplog.at_level("DEBUG", logger="rewards"):
        dry_run(_cfg(name="videoseg_r1"), [KTG])
    assert resolve.SKIP_COUNTS == before
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]
    with pytest.raises(InvalidSampleError, match="lacks key 'objects'"):
        dry_run(_cfg(name="videoseg_r1"), [AKS])
