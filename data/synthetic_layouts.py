"""On-disk layouts of the synthetic data set: the released layout of each benchmark.

:func:`write_split` writes one split of generated videos under a staging folder, in the
layout that the matching reader of :mod:`data.readers` opens (``data.format`` = the layout
name). ``parts(layout, split)`` are the folders (relative to the data set root) that make up
one split; :mod:`data.synthetic` moves them into place and marks each with its config hash.

``revos`` (the default, read by ``data.format=revos`` or ``synthetic``)::

    <split>/meta_expressions.json      per video vid_id, height, width, frames, expressions
                                       {exp, obj_id, anno_id, type_id}, and "objects" (colour/shape per anno id)
    <split>/mask_dict.json             {anno_id: [COCO RLE or null per frame]}
    <split>/mask_dict_foreground.json  {vid: {"masks_rle": [...], "foreground_ratio": [...]}}
    <split>/JPEGImages/<vid>/<frame>.jpg

``mevis`` (MeViS release: no sizes, types, object list or foreground file)::

    <split>/meta_expressions.json      {"videos": {vid: {"vid_id", "frames", "expressions":
                                        {"0": {"exp", "obj_id": [k, ...], "anno_id": [a, ...]}}}}}
    <split>/mask_dict.json             {anno_id: [COCO RLE or null per frame]}
    <split>/JPEGImages/<vid>/<frame>.jpg

``refytvos`` (Ref-YouTube-VOS release) and ``davis`` (Ref-DAVIS17 converted to it)::

    meta_expressions/<split>/meta_expressions.json  {"videos": {vid: {"expressions": {"0": {"exp", "obj_id": "1"}},
                                                                      "frames": [...]}}}
    <split>/meta.json                  {"videos": {vid: {"objects": {"1": {"category", "frames"}}}}}
    <split>/JPEGImages/<vid>/<frame>.jpg
    <split>/Annotations/<vid>/<frame>.png   palette PNG, pixel value = object id (object k -> k + 1)

An expression of these two formats names exactly one object, so only the single-target
expressions are written (multi-target and no-target ones are dropped; a video left with
none is left out). ``davis`` orders each video's expressions by object, as the conversion of
the Ref-DAVIS17 text files does. Every split, including the evaluation split, gets masks (the
real ``valid`` splits of MeViS and Ref-YouTube-VOS are released without them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from data import io as data_io
from data import rle as rle_codec

if TYPE_CHECKING:
    from data.config import SyntheticConfig
    from data.synthetic import SyntheticVideo

logger = logging.getLogger(__name__)

#: Layouts the generator writes (each is also the ``data.format`` that reads it).
LAYOUTS = ("revos", "mevis", "refytvos", "davis")
#: The split a layout's evaluation reads (MeViS evaluates locally on ``valid_u``).
EVAL_SPLITS = {"revos": "valid", "mevis": "valid_u", "refytvos": "valid", "davis": "valid"}
#: Folder of the per-split expression files of the Ref-YouTube-VOS layout.
META_FOLDER = "meta_expressions"


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown synthetic layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def parts(layout: str, split: str) -> list[str]:
    """Folders (relative to the data set root) holding one split, in the order they are moved into place."""
    check_layout(layout)
    if layout in ("refytvos", "davis"):
        return [split, f"{META_FOLDER}/{split}"]
    return [split]


def write_split(staging: Path, layout: str, split: str, cfg: "SyntheticConfig",
                videos: Iterable[tuple[int, "SyntheticVideo"]]) -> None:
    """Write ``videos`` (``(index, video)`` pairs) as ``split`` of ``layout`` under ``staging``."""
    check_layout(layout)
    writer = _WRITERS[layout]
    writer(staging, split, cfg, videos, layout)


def video_id(index: int) -> str:
    return f"synth_{index:05d}"


def frame_names(cfg: "SyntheticConfig") -> list[str]:
    return [f"{t:05d}" for t in range(cfg.num_frames)]


def _write_frames(folder: Path, vid: str, video: "SyntheticVideo", names: list[str], quality: int) -> None:
    for t, name in enumerate(names):
        data_io.write_jpeg(folder / "JPEGImages" / vid / f"{name}.jpg", video.frames[t], quality)


# ----------------------------------------------------------------- MeViS / ReVOS


def _write_rle_layout(staging: Path, split: str, cfg: "SyntheticConfig",
                      videos: Iterable[tuple[int, "SyntheticVideo"]], layout: str) -> None:
    """MeViS and ReVOS: expressions + one RLE list per annotation id (ids count up over the split)."""
    folder = staging / split
    revos = layout == "revos"
    entries: dict[str, Any] = {}
    mask_dict: dict[str, list] = {}
    foreground: dict[str, Any] = {}
    next_anno = 0
    names = frame_names(cfg)
    pixels = cfg.height * cfg.width
    for index, video in videos:
        vid = video_id(index)
        anno_ids = list(range(next_anno, next_anno + len(video.objects)))
        next_anno += len(video.objects)
        _write_frames(folder, vid, video, names, cfg.jpeg_quality)
        for k, anno in enumerate(anno_ids):
            mask_dict[str(anno)] = [rle_codec.encode_or_none(video.masks[k, t]) for t in range(cfg.num_frames)]
        if revos:
            union = video.masks.any(axis=0)  # T x H x W
            foreground[vid] = {"masks_rle": [rle_codec.encode(m) for m in union],
                               "foreground_ratio": [float(m.sum()) / pixels for m in union]}
            entries[vid] = {
                "vid_id": index, "height": cfg.height, "width": cfg.width, "frames": names,
                "expressions": {
                    str(e): {"exp": exp.text, "obj_id": list(exp.targets),
                             "anno_id": [anno_ids[k] for k in exp.targets], "type_id": exp.type_id}
                    for e, exp in enumerate(video.expressions)
                },
                "objects": [{"obj_id": k, "anno_id": anno_ids[k], "colour": o.colour, "shape": o.shape}
                            for k, o in enumerate(video.objects)],
            }
        else:
            entries[vid] = {
                "vid_id": index, "frames": names,
                "expressions": {str(e): {"exp": exp.text, "obj_id": list(exp.targets),
                                         "anno_id": [anno_ids[k] for k in exp.targets]}
                                for e, exp in enumerate(video.expressions)},
            }
    data_io.write_json_atomic(folder / "mask_dict.json", mask_dict)
    if revos:
        data_io.write_json_atomic(folder / "mask_dict_foreground.json", foreground)
    data_io.write_json_atomic(folder / "meta_expressions.json", {"videos": entries})


# ------------------------------------------------------- Ref-YouTube-VOS / DAVIS


def object_id_map(masks: np.ndarray) -> np.ndarray:
    """``N x T x H x W`` disjoint bool masks -> ``T x H x W`` uint8 palette ids (object k -> k + 1, 0 = none)."""
    if masks.shape[0] > 255:
        raise ValueError(f"{masks.shape[0]} objects do not fit a palette PNG (at most 255)")
    if masks.shape[0] and masks.sum(axis=0).max() > 1:
        raise ValueError("palette annotations need disjoint (visible) masks")
    ids = np.zeros(masks.shape[1:], np.uint8)
    for k in range(masks.shape[0]):
        ids[masks[k]] = k + 1
    return ids


def single_target_expressions(video: "SyntheticVideo", by_object: bool) -> list[tuple[str, int]]:
    """``(text, object index)`` of the expressions naming exactly one object (grouped by object if asked)."""
    found = [(exp.text, exp.targets[0]) for exp in video.expressions if len(exp.targets) == 1]
    return sorted(found, key=lambda item: item[1]) if by_object else found


def _write_palette_layout(staging: Path, split: str, cfg: "SyntheticConfig",
                          videos: Iterable[tuple[int, "SyntheticVideo"]], layout: str) -> None:
    """Ref-YouTube-VOS (and converted Ref-DAVIS17): one object per expression, palette PNG masks."""
    folder = staging / split
    names = frame_names(cfg)
    expressions: dict[str, Any] = {}
    objects_meta: dict[str, Any] = {}
    left_out = []
    for index, video in videos:
        vid = video_id(index)
        chosen = single_target_expressions(video, by_object=layout == "davis")
        if not chosen:
            left_out.append(vid)
            continue
        _write_frames(folder, vid, video, names, cfg.jpeg_quality)
        ids = object_id_map(video.masks)
        for t, name in enumerate(names):
            data_io.write_palette_png(folder / "Annotations" / vid / f"{name}.png", ids[t])
        expressions[vid] = {"expressions": {str(e): {"exp": text, "obj_id": str(k + 1)}
                                            for e, (text, k) in enumerate(chosen)},
                            "frames": names}
        objects_meta[vid] = {"objects": {
            str(k + 1): {"category": obj.shape, "frames": [names[t] for t in range(cfg.num_frames)
                                                            if video.masks[k, t].any()]}
            for k, obj in enumerate(video.objects) if video.masks[k].any()
        }}
    if left_out:
        logger.info("%s layout, split %s: %d video(s) without a single-object expression left out (%s)",
                    layout, split, len(left_out), ", ".join(left_out[:5]))
    data_io.write_json_atomic(folder / "meta.json", {"videos": objects_meta})
    data_io.write_json_atomic(staging / META_FOLDER / split / "meta_expressions.json", {"videos": expressions})


_WRITERS = {"revos": _write_rle_layout, "mevis": _write_rle_layout,
            "refytvos": _write_palette_layout, "davis": _write_palette_layout}

__all__ = ["LAYOUTS", "EVAL_SPLITS", "META_FOLDER", "check_layout", "parts", "write_split", "video_id",
           "frame_names", "object_id_map", "single_target_expressions"]
