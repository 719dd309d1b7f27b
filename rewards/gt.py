"""Ground-truth format of the rewards: documentation, validation, RLE helpers.

A ground truth is a dict (or its JSON string). Coordinates are in the
**model's input space** (the resized keyframe, e.g. 840 x 840; Veason-R1 560 x 560).

Grounding rewards (``visionreasoner``, ``rcot_ktg``, ``videoseg_r1``)::

    {"objects": [{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}, ...]}

(a bare list of such objects, VisionReasoner's own GT format, is accepted too).

``segzero_strict``: the first object, with two points
``"points": [[x, y], [x, y]]`` (absent: ``point_2d`` is used for both).

``videoseg_r1`` adds, for its mask terms (each term is 0 and flagged
unavailable when its inputs are absent, see :mod:`rewards.videoseg_r1`):

* ``"masks"``: one COCO RLE (``{"size": [H, W], "counts": str}``) per object
  at input size; the terms use their union;
* ``"image_path"``: the keyframe image at original resolution (resized to the
  input size before segmenting);
* ``"input_size"``: ``[W, H]`` (default: the RLE size);
* ``"difficulty"``: D in [1, 10] for the soft length penalty (optional).

``rcot_aks``: ``{"answer": "A"}`` (one of the options).

``veason_r1`` (all lists indexed by sampled frame, in order)::

    {"frames": [t0, t1, ...],            # sampled frame indices (timestamps)
     "frame_areas": [a0, a1, ...],       # GT union-mask area per sampled frame
     "objects": [{"bbox_2d": [...]}],    # GT boxes on the data's keyframe, or
     "frame_boxes": [[[x1,y1,x2,y2], ...], ...],  # GT boxes per sampled frame
     "frame_paths": ["...jpg", ...],     # temporal term: the sampled frames
     "frame_masks": [RLE, ...],          # temporal term: GT union mask per sampled frame
     "input_size": [W, H]}

``frame_areas`` may be omitted when ``frame_masks`` is given (areas are then
counted from the masks). A malformed ground truth raises
:class:`GroundTruthError` naming the offending key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from rewards.parsing import coerce_number, coerce_vector


class GroundTruthError(ValueError):
    """A ground truth that does not follow the documented format; ``key`` names the offending key when known."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key

    def __reduce__(self):  # keep ``key`` across pickling (errors travel back from Ray workers)
        return type(self), (str(self), self.key)


def load(ground_truth: Any) -> dict:
    """The ground truth as a dict: JSON strings are decoded, a bare list becomes ``{"objects": list}``."""
    gt = ground_truth
    if isinstance(gt, (str, bytes, bytearray)):
        try:
            gt = json.loads(gt)
        except ValueError as exc:
            raise GroundTruthError(f"ground truth is not valid JSON: {exc}") from exc
    if isinstance(gt, list):
        return {"objects": gt}
    if isinstance(gt, Mapping):
        return dict(gt)
    raise GroundTruthError(f"ground truth must be a dict, a list of objects or their JSON, got {type(gt).__name__}")


def _vector(value: Any, length: int, name: str) -> tuple[float, ...]:
    vec = coerce_vector(value, length)
    if vec is None:
        raise GroundTruthError(f"ground truth '{name}' must be a list of {length} finite numbers, got {value!r}",
                               key=name)
    return vec


def objects(gt: Mapping, need_points: bool = True, key: str = "objects") -> tuple[np.ndarray, np.ndarray]:
    """GT boxes ``N x 4`` and points ``N x 2`` (NaN when ``need_points`` is False and absent)."""
    items = gt.get(key)
    if not isinstance(items, (list, tuple)):
        raise GroundTruthError(f"ground truth '{key}' must be a list of objects, got {type(items).__name__}", key=key)
    boxes = np.zeros((len(items), 4))
    points = np.full((len(items), 2), np.nan)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise GroundTruthError(f"ground truth '{key}[{i}]' must be a dict, got {type(item).__name__}",
                                   key=f"{key}[{i}]")
        boxes[i] = _vector(item.get("bbox_2d"), 4, f"{key}[{i}].bbox_2d")
        if need_points or "point_2d" in item:
            points[i] = _vector(item.get("point_2d"), 2, f"{key}[{i}].point_2d")
    return boxes, points


def box_lists(values: Any, name: str) -> list[np.ndarray]:
    """Per-frame GT boxes ``[[[x1,y1,x2,y2], ...], ...]`` -> list of ``N_t x 4`` arrays."""
    if not isinstance(values, (list, tuple)):
        raise GroundTruthError(f"ground truth '{name}' must be a list (one box list per frame)", key=name)
    out = []
    for t, frame_boxes in enumerate(values):
        if not isinstance(frame_boxes, (list, tuple)):
            raise GroundTruthError(f"ground truth '{name}[{t}]' must be a list of boxes", key=name)
        arr = np.zeros((len(frame_boxes), 4))
        for i, box in enumerate(frame_boxes):
            arr[i] = _vector(box, 4, f"{name}[{t}][{i}]")
        out.append(arr)
    return out


def input_size(gt: Mapping) -> tuple[int, int] | None:
    """``(W, H)`` of the model input, or None when the ground truth does not say."""
    value = gt.get("input_size")
    if value is None:
        return None
    vec = coerce_vector(value, 2)
    if vec is None or min(vec) <= 0 or any(v != int(v) for v in vec):
        raise GroundTruthError(f"ground truth 'input_size' must be [W, H] positive ints, got {value!r}",
                               key="input_size")
    return int(vec[0]), int(vec[1])


def difficulty(gt: Mapping, default: float) -> float:
    """Task difficulty D (float), ``default`` when absent."""
    if gt.get("difficulty") is None:
        return float(default)
    value = coerce_number(gt["difficulty"])
    if value is None:
        raise GroundTruthError(f"ground truth 'difficulty' must be a number, got {gt['difficulty']!r}",
                               key="difficulty")
    return value


# ------------------------------------------------------------------- RLE


def encode_mask(mask: np.ndarray) -> dict:
    """``H x W`` bool -> COCO RLE ``{"size": [H, W], "counts": str}`` (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Any, name: str = "mask") -> np.ndarray:
    """COCO RLE (compressed ``str``/``bytes`` counts or an uncompressed ``list``) -> ``H x W`` bool."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise GroundTruthError(f"ground truth '{name}' must be a COCO RLE dict with 'size' and 'counts'", key=name)
    size = coerce_vector(rle["size"], 2)
    if size is None or min(size) < 0:
        raise GroundTruthError(f"ground truth '{name}.size' must be [H, W], got {rle['size']!r}", key=name)
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    try:
        if isinstance(counts, list):
            coded = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        elif isinstance(counts, (str, bytes)):
            coded = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        else:
            raise TypeError(f"counts of type {type(counts).__name__}")
        mask = mask_utils.decode(coded)
    except Exception as exc:
        raise GroundTruthError(f"ground truth '{name}' is not a decodable COCO RLE: {exc}", key=name) from exc
    if mask.shape != (h, w):
        raise GroundTruthError(f"ground truth '{name}' decodes to {mask.shape}, expected {(h, w)}", key=name)
    return mask.astype(bool)


def union_of_rles(rles: Sequence[Any], name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Union (OR) of several RLE masks of one size -> ``H x W`` bool; ``shape`` = (H, W) when the list is empty."""
    if not isinstance(rles, (list, tuple)):
        raise GroundTruthError(f"ground truth '{name}' must be a list of COCO RLE dicts", key=name)
    union = None
    for i, rle in enumerate(rles):
        mask = decode_rle(rle, f"{name}[{i}]")
        if union is None:
            union = mask.copy()
        elif mask.shape != union.shape:
            raise GroundTruthError(f"ground truth '{name}[{i}]' has size {mask.shape}, expected {union.shape}",
                                   key=name)
        else:
            union |= mask
    if union is None:
        if shape is None:
            raise GroundTruthError(f"ground truth '{name}' is empty and no input_size gives its shape", key=name)
        union = np.zeros(shape, dtype=bool)
    return union


def check_shape(mask: np.ndarray, size_wh: tuple[int, int] | None, name: str) -> None:
    """Raise unless ``mask`` is ``H x W`` of the input size ``(W, H)`` (when known)."""
    if size_wh is not None and mask.shape != (size_wh[1], size_wh[0]):
        raise GroundTruthError(
            f"ground truth '{name}' has size {list(mask.shape)} (H, W) but input_size is {list(size_wh)} (W, H)"
        )


# -------------------------------------------------------------- validation


def check_grounding(gt: Mapping, need_points: bool = True) -> None:
    """Checks shared by the grounding rewards: ``input_size`` (when given) and the ``objects`` list."""
    input_size(gt)
    objects(gt, need_points=need_points)


def validate(ground_truth: Any, reward_name: str) -> dict:
    """Check a ground truth for one reward (keys, types, decodable masks); returns it as a dict.

    The keys a reward needs and its type checks are declared by the reward itself
    (:attr:`rewards.registry.Reward.gt_keys`, :meth:`rewards.registry.Reward.check_ground_truth`).
    """
    from rewards.registry import get_reward, reward_names  # the reward modules import this module

    gt = load(ground_truth)
    if reward_name not in reward_names():
        raise GroundTruthError(f"unknown reward name {reward_name!r}; expected one of {list(reward_names())}")
    get_reward(reward_name).check_ground_truth(gt)
    return gt
