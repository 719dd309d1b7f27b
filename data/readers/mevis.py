"""MeViS reader (released layout), also the base of the ReVOS / synthetic reader.

Layout (``root`` = the MeViS folder, or the split folder itself)::

    <root>/<split>/meta_expressions.json   {"videos": {vid: {"vid_id", "frames": [...],
                                             "expressions": {"0": {"exp", "obj_id": [..], "anno_id": [..]}}}}}
    <root>/<split>/mask_dict.json          {anno_id (str): [COCO RLE or null per frame]}
    <root>/<split>/JPEGImages/<vid>/<frame>.jpg

``valid`` has no ``mask_dict.json``: its samples have ``has_masks=False``. The
object ids of an :class:`Expression` are its anno ids as str (keys of
``mask_dict.json``); ``mask_dict.json`` is parsed once per reader, on the first
mask access, and each frame's RLE is decoded only when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from data import io as data_io
from data.readers.base import DatasetReader, find_first
from data.readers.masks import LazyJsonFile, RleMaskLoader
from data.types import Expression, VideoSample

MASK_DICT_NAME = "mask_dict.json"


class MevisReader(DatasetReader):
    name = "mevis"

    def __init__(self, root: str | Path, split: str = "train", name: str | None = None):
        super().__init__(root, split, name)
        mask_path = self.data_dir / MASK_DICT_NAME
        self.mask_dict: Optional[LazyJsonFile] = LazyJsonFile(mask_path, "mask dict") if mask_path.is_file() else None

    def _meta_candidates(self) -> list[Path]:
        return [self.root / self.split / "meta_expressions.json", self.root / "meta_expressions.json"]

    def _locate(self) -> tuple[Path, Path]:
        meta_path = find_first(self._meta_candidates(), f"{self.name} {self.split} meta_expressions")
        return meta_path, meta_path.parent

    # -------------------------------------------------------------------------

    def _anno_ids(self, video_id: str, exp_id: str, exp: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
        """``(anno ids as str, whether the entry lists them)``."""
        if "anno_id" not in exp:
            return (), False
        anno_ids = exp["anno_id"]
        if isinstance(anno_ids, (int, str)):
            anno_ids = [anno_ids]
        if not isinstance(anno_ids, list) or not all(isinstance(a, (int, str)) for a in anno_ids):
            raise self._error(video_id, f"expression {exp_id!r}: 'anno_id' must be a list of ids")
        return tuple(dict.fromkeys(str(a) for a in anno_ids)), True

    def _video_size(self, video_id: str, entry: dict[str, Any], frame_paths: list[Path]) -> tuple[int, int]:
        height, width = entry.get("height"), entry.get("width")
        if height is None or width is None:
            return data_io.image_size(frame_paths[0])  # header only
        if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
            raise self._error(video_id, f"bad height/width {height!r} x {width!r}")
        return height, width

    def _build_sample(self, video_id: str, entry: dict[str, Any]) -> VideoSample:
        frames = self._frame_names(video_id, entry)
        raw = self._expressions_entry(video_id, entry)
        height, width = self._video_size(video_id, entry, self._frame_paths(video_id, frames))
        expressions: dict[str, Expression] = {}
        all_ids: dict[str, None] = {}
        for exp_id, exp in raw.items():
            obj_ids, known = self._anno_ids(video_id, exp_id, exp)
            all_ids.update(dict.fromkeys(obj_ids))
            type_id = self._type_id(video_id, exp_id, exp, obj_ids, known)
            expressions[exp_id] = Expression(exp_id=exp_id, text=exp["exp"], obj_ids=obj_ids, type_id=type_id)
        loaders = {}
        if self.mask_dict is not None:
            loaders = {aid: RleMaskLoader(self.mask_dict, aid, (height, width)) for aid in all_ids}
        extra = {"vid_id": entry.get("vid_id"),
                 "expression_obj_ids": {k: v.get("obj_id") for k, v in raw.items() if "obj_id" in v}}
        if "objects" in entry:  # synthetic data sets: colour / shape per anno id
            extra["objects"] = entry["objects"]
        return self._sample(video_id, frames, height, width, expressions, mask_loaders=loaders,
                            foreground_loader=self._foreground_loader(video_id, (height, width)),
                            has_masks=self.mask_dict is not None, extra=extra)

    def _foreground_loader(self, video_id: str, shape: tuple[int, int]):
        return None


__all__ = ["MevisReader", "MASK_DICT_NAME"]
