"""Registry: params plumbing, score = weighted combination of components, group == single scoring."""

import json

import pytest

import rewards
from rewards import REWARD_NAMES, build_params, compute, compute_group, get_reward, max_score, score_range
from rewards.params import RewardParams, VideoSegR1Params, VisionReasonerParams
from rewards.registry import Reward, register_reward

GROUNDING_GT = {"objects": [{"bbox_2d": [416, 7, 833, 553], "point_2d": [648, 249]},
                            {"bbox_2d": [10, 100, 398, 423], "point_2d": [283, 169]}]}
GT = {
    "visionreasoner": GROUNDING_GT,
    "rcot_ktg": GROUNDING_GT,
    "dense_grounding": GROUNDING_GT,
    "videoseg_r1": dict(GROUNDING_GT, difficulty=9.0),
    "segzero_strict": {"objects": [{"bbox_2d": [10, 10, 50, 50], "points": [[20, 20], [40, 40]]}]},
    "rcot_aks": {"answer": "B"},
    "veason_r1": {"frames": [0, 4, 8], "frame_areas": [5, 20, 10], "frame_boxes": [[[0, 0, 3, 3]], [[1, 1, 9, 9]], []]},
}
RESPONSES = [
    '<think>a. b.</think><answer>[{"bbox_2d": [416,7,833,553], "point_2d": [648,249]}]</answer>',
    '<think>a. a. a.</think><answer>[{"bbox_2d": [12,100,398,420], "point_2d": [283,169], "neg_point_2d": [1,1]}, 3]</answer>',
    '<think>x</think><answer>{"bbox": [10,10,50,40], "points_1": [20,20], "points_2": [40,30]}</answer>',
    '<think>x</think><answer>B</answer>',
    '<think>x</think><answer>{"keyframe_timestamp": 4, "bbox_2d_list": [[1,1,9,8], [0,0,2,2]]}</answer>',
    "",
]


def test_public_names():
    for name in REWARD_NAMES:
        assert get_reward(name).name == name
    with pytest.raises(KeyError, match="nope"):
        get_reward("nope")


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_score_is_weighted_combination(name):
    reward = get_reward(name)
    params = reward.params_cls()
    for field_name in vars(params):            # non-default weights
        if field_name.startswith(("weight_", "lambda_")):
            setattr(params, field_name, 0.5 + len(field_name) / 10)
    terms = reward.terms(params)
    for response in RESPONSES:
        result = compute(name, response, GT[name], params=params, use_default_models=False)
        unscaled = reward.unscaled_terms(params) if reward.multiplier else frozenset()
        expected = sum(t.weight * result[k] for k, t in terms.items() if k not in unscaled)
        if reward.multiplier:
            expected *= result[reward.multiplier]
        expected += sum(t.weight * result[k] for k, t in terms.items() if k in unscaled)
        assert result["score"] == pytest.approx(expected)
        assert all(0.0 <= result[k] <= t.max_value + 1e-12 for k, t in terms.items())


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_group_equals_single(name):
    group = compute_group(name, RESPONSES, GT[name], use_default_models=False)
    assert group == [compute(name, r, GT[name], use_default_models=False) for r in RESPONSES]
    assert compute_group(name, [], GT[name]) == []


def test_params_as_instance_mapping_or_flat():
    inst = VisionReasonerParams(weight_accuracy=2.0)
    a = compute("visionreasoner", RESPONSES[0], GROUNDING_GT, params=inst)
    b = compute("visionreasoner", RESPONSES[0], GROUNDING_GT, params={"weight_accuracy": 2.0})
    c = compute("visionreasoner", RESPONSES[0], GROUNDING_GT, weight_accuracy=2.0)
    assert a == b == c and a["score"] == 1 + 2 + 2 * 1.5 + 1
    assert inst.weight_accuracy == 2.0                                       # caller's instance untouched
    d = compute("visionreasoner", RESPONSES[0], GROUNDING_GT, params=inst, weight_accuracy=0.0)
    assert d["score"] == 4.0 and inst.weight_accuracy == 2.0


def test_nested_params():
    p = build_params("videoseg_r1", iou_threshold=0.9, **{"base.max_objects": 3}, tau_neg=10)
    assert isinstance(p, VideoSegR1Params) and p.base.iou_threshold == 0.9 and p.base.max_objects == 3
    assert p.tau_neg == 10.0 and isinstance(p.tau_neg, float)
    p = build_params("videoseg_r1", {"base": {"alpha_iou": 1.0}, "beta": 0.01})
    assert p.base.alpha_iou == 1.0 and p.beta == 0.01
    assert max_score("videoseg_r1", p) == 9.0
    # A partial nested mapping keeps the owner's defaults for the keys it does not give:
    # VideoSeg-R1's base has alpha_iou = 0 (the paper's accuracy), dense grounding's the VisionReasoner 1.
    p = build_params("videoseg_r1", {"base": {"iou_threshold": 0.6}})
    assert (p.base.iou_threshold, p.base.alpha_iou) == (0.6, 0.0)
    assert build_params("dense_grounding", {"base": {"iou_threshold": 0.6}}).base.alpha_iou == 1.0
    assert max_score("videoseg_r1", RewardParams().videoseg_r1) == 8.0
    assert score_range("videoseg_r1") == (0.0, 8.0)


def test_unknown_and_bad_params():
    with pytest.raises(TypeError, match="iou_treshold"):
        compute("visionreasoner", "x", GROUNDING_GT, iou_treshold=0.3)
    with pytest.raises(TypeError, match="base.nope"):
        build_params("videoseg_r1", **{"base.nope": 1})
    with pytest.raises(TypeError, match="max_objects"):
        build_params("visionreasoner", max_objects=2.5)
    with pytest.raises(TypeError, match="weight_accuracy"):
        build_params("visionreasoner", weight_accuracy="high")
    with pytest.raises(ValueError, match="invalid_item_policy"):
        build_params("rcot_ktg", invalid_item_policy="skip")
    with pytest.raises(TypeError, match="params"):
        build_params("rcot_ktg", params=VisionReasonerParams())
    with pytest.raises(TypeError, match="options"):
        build_params("rcot_aks", options=[1, 2])


def test_params_from_omegaconf_node():
    from rl.schema import omega_node  # OmegaConf node of the params (their Literal fields made plain str)

    node = omega_node(RewardParams()).rcot_aks
    assert build_params("rcot_aks", node).options == ["A", "B"]


def test_group_needs_a_sequence():
    with pytest.raises(TypeError, match="single string"):
        compute_group("visionreasoner", "one response", GROUNDING_GT)


def test_per_response_counts_must_match():
    with pytest.raises(ValueError, match="think_tokens"):
        compute_group("videoseg_r1", ["a", "b"], GROUNDING_GT, think_tokens=[1], use_default_models=False)


def test_register_custom_reward():
    @register_reward("test_rewards_constant")
    class Constant(Reward):
        params_cls = VisionReasonerParams

        def terms(self, params):
            from rewards.registry import Term
            return {"one": Term(params.weight_think_format, 1.0)}

        def score_group(self, responses, gt, params, ctx):
            return [{"one": 1.0} for _ in responses]

    assert compute("test_rewards_constant", "x", {}, weight_think_format=3.0) == {"score": 3.0, "one": 1.0}
    with pytest.raises(ValueError, match="already registered"):
        register_reward("visionreasoner")(Constant)
    rewards.registry.REWARD_REGISTRY.pop("test_rewards_constant")


def test_non_string_responses():
    assert compute("visionreasoner", None, GROUNDING_GT)["score"] == 1.0            # non-repeat only
    assert compute("visionreasoner", RESPONSES[0].encode(), GROUNDING_GT)["accuracy"] == 1.5
    assert json.dumps(compute("veason_r1", 12345, GT["veason_r1"], use_default_models=False))
