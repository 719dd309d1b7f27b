"""SAM2 image segmenter with random weights: shapes, one embedding per image, LRU cache, batching."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sam2")

from rewards.vision.base import ObjectPrompt  # noqa: E402
from rewards.vision.sam2_common import backbone_feature_sizes, check_image_size, hydra_overrides  # noqa: E402
from rewards.vision.sam2_image import Sam2ImageSegmenter  # noqa: E402
from tests.rewards.vision.vision_synthetic import ramp_background  # noqa: E402

IMAGE_SIZE = 64   # the smallest multiple of 32 that keeps every feature map >= 2 px; the logic is size-independent


@pytest.fixture(scope="module")
def shared_model(one_torch_thread):
    """One random-weight SAM2 tiny model for the whole module (building takes ~1-3 s)."""
    return Sam2ImageSegmenter(image_size=IMAGE_SIZE).model


@pytest.fixture()
def segmenter(shared_model) -> Sam2ImageSegmenter:
    return Sam2ImageSegmenter(image_size=IMAGE_SIZE, model=shared_model, cache_size=2)


def image(seed: int, height: int = 96, width: int = 120) -> np.ndarray:
    return ramp_background(height, width, np.random.default_rng(seed))


def group_prompts(n: int = 8) -> list[list[ObjectPrompt]]:
    """n prompt sets as a GRPO group would give them: box + positive + negative point, some two-object."""
    sets = []
    for i in range(n):
        first = ObjectPrompt(box=(10 + i, 12, 60 + i, 70), points=((35.0 + i, 40.0), (90.0, 20.0)), labels=(1, 0))
        sets.append([first] if i % 2 else [first, ObjectPrompt(box=(70, 50, 110, 90))])
    return sets


def test_runs_and_returns_masks(segmenter):
    img = image(0)
    masks = segmenter.segment(img, group_prompts(8))
    assert len(masks) == 8
    assert all(m.shape == img.shape[:2] and m.dtype == bool for m in masks)


def test_one_embedding_per_group_and_cache_hit(segmenter):
    img = image(1)
    first = segmenter.segment(img, group_prompts(8))
    assert segmenter.stats["embeddings_computed"] == 1 and segmenter.stats["cache_hits"] == 0
    second = segmenter.segment(img.copy(), group_prompts(8))   # same content, another array
    assert segmenter.stats["embeddings_computed"] == 1 and segmenter.stats["cache_hits"] == 1
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    segmenter.segment(image(2), group_prompts(2))
    assert segmenter.stats["embeddings_computed"] == 2


def test_lru_eviction(shared_model):
    seg = Sam2ImageSegmenter(image_size=IMAGE_SIZE, model=shared_model, cache_size=1)
    a, b = image(3), image(4)
    for img in (a, b, a):
        seg.segment(img, group_prompts(1))
    assert seg.stats["embeddings_computed"] == 3 and seg.stats["cache_hits"] == 0
    seg = Sam2ImageSegmenter(image_size=IMAGE_SIZE, model=shared_model, cache_size=2)
    for img in (a, b, a, b):
        seg.segment(img, group_prompts(1))
    assert seg.stats["embeddings_computed"] == 2 and seg.stats["cache_hits"] == 2


def test_no_cache_recomputes(shared_model):
    seg = Sam2ImageSegmenter(image_size=IMAGE_SIZE, model=shared_model, cache_size=0)
    img = image(5)
    for prompts in group_prompts(3):
        seg.segment(img, [prompts])
    assert seg.stats["embeddings_computed"] == 3


def test_batched_decoding_equals_one_predict_per_object(segmenter):
    """Independent reference: the sam2 predictor's own public predict(box=..., point_coords=...) per object."""
    img = image(6)
    sets = group_prompts(4)
    masks = segmenter.segment(img, sets)
    predictor = segmenter.predictor_for(img)
    for prompts, mask in zip(sets, masks):
        expected = np.zeros(img.shape[:2], bool)
        for p in prompts:
            out, scores, _ = predictor.predict(
                point_coords=np.array(p.points, float) if p.points else None,
                point_labels=np.array(p.labels) if p.points else None,
                box=np.array(p.box, float),
                multimask_output=True,
            )
            expected |= out[int(np.argmax(scores))] > 0.5
        assert (mask == expected).mean() > 0.999


def test_union_is_or_of_objects(segmenter):
    img = image(7)
    a = ObjectPrompt(box=(5, 5, 50, 50), points=((20.0, 20.0),), labels=(1,))
    b = ObjectPrompt(box=(60, 40, 115, 90), points=((80.0, 60.0),), labels=(1,))
    both, only_a, only_b = segmenter.segment(img, [[a, b], [a], [b]])
    assert np.array_equal(both, only_a | only_b)


def test_empty_prompt_sets_need_no_embedding(segmenter):
    img = image(8)
    out = segmenter.segment(img, [[], [ObjectPrompt(box=(1, 2, 0, 0))]])   # empty set; reversed box, no points
    assert [m.any() for m in out] == [False, False]
    assert segmenter.stats["embeddings_computed"] == 0
    assert segmenter.stats["objects_skipped"] == 1 and segmenter.stats["boxes_dropped"] == 1


def test_malformed_cues_never_reach_sam2(segmenter):
    """Off-image box / point dropped and counted, a box partly outside clipped (one call per set, so
    each decode is a batch of one and the masks compare exactly)."""
    img = image(10)                                             # 96 x 120
    (reference,) = segmenter.segment(img, [[ObjectPrompt(box=(0, 12, 60, 70))]])
    (clipped_with_outside_point,) = segmenter.segment(
        img, [[ObjectPrompt(box=(-20, 12, 60, 70), points=((500.0, 20.0),), labels=(1,))]])
    assert np.array_equal(clipped_with_outside_point, reference)
    assert segmenter.stats["points_outside_image"] == 1
    (off_image,) = segmenter.segment(img, [[ObjectPrompt(box=(130, 10, 200, 50))]])   # columns >= 120
    assert not off_image.any()
    assert segmenter.stats["boxes_outside_image"] == 1 and segmenter.stats["objects_skipped"] == 1
    assert segmenter.stats["objects_decoded"] == 2


def test_videoseg_r1_prompts_sam2_with_the_valid_object_only(shared_model, tmp_path):
    """Mask-IoU path with SAM2 (random weights): the reversed and the off-image items of an answer are
    not decoded; the answer scores the mask IoU of its valid item alone and counts 2 malformed cues."""
    from rewards import compute_group
    from tests.rewards.rewards_fakes import box_mask, rle, write_image

    w, h = 40, 30
    gt = {"objects": [{"bbox_2d": [10, 5, 19, 14], "point_2d": [15, 10]}],
          "masks": [rle(box_mask((h, w), [10, 5, 19, 14]))],
          "image_path": write_image(tmp_path / "key.png", (w, h)), "input_size": [w, h]}
    valid = {"bbox_2d": [10, 5, 19, 14], "point_2d": [15, 10]}
    mixed = [valid, {"bbox_2d": [30, 25, 22, 20], "point_2d": [26, 22]}, {"bbox_2d": [45, 2, 60, 8]}]
    responses = [f"<think>t</think><answer>{json.dumps(items)}</answer>" for items in ([valid], mixed)]
    seg = Sam2ImageSegmenter(image_size=IMAGE_SIZE, model=shared_model)
    only_valid, with_malformed = compute_group("videoseg_r1", responses, gt, segmenter=seg)
    assert seg.stats["objects_decoded"] == 1 and seg.stats["embeddings_computed"] == 1
    assert with_malformed["mask_iou"] == only_valid["mask_iou"]
    assert (only_valid["malformed_cues"], with_malformed["malformed_cues"]) == (0.0, 2.0)


@pytest.mark.slow
def test_group_of_eight_at_256_px(one_torch_thread):
    seg = Sam2ImageSegmenter(image_size=256)
    img = image(9)
    masks = seg.segment(img, group_prompts(8))
    assert [m.shape for m in masks] == [img.shape[:2]] * 8 and all(m.dtype == bool for m in masks)
    assert seg.stats["embeddings_computed"] == 1


def test_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "sam2.1_hiera_tiny.pt"
    with pytest.raises(FileNotFoundError, match="sam2.1_hiera_tiny.pt"):
        Sam2ImageSegmenter(checkpoint=str(missing), image_size=IMAGE_SIZE)


@pytest.mark.parametrize("size", [0, 80, 112, 1000])
def test_image_size_must_be_a_multiple_of_32(size):
    with pytest.raises(ValueError, match="multiple of 32"):
        check_image_size(size)


def test_size_dependent_settings():
    assert backbone_feature_sizes(256) == [(64, 64), (32, 32), (16, 16)]
    assert backbone_feature_sizes(1024) == [(256, 256), (128, 128), (64, 64)]   # sam2's hard-coded 1024 values
    assert hydra_overrides(256, video=False) == ["++model.image_size=256"]
    assert "++model.memory_attention.layer.cross_attention.feat_sizes=[16,16]" in hydra_overrides(256, video=True)
