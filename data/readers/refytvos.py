"""Ref-YouTube-VOS reader (released layout); Ref-DAVIS17 converted to it uses the same code.

Layout (``root`` = the Ref-YouTube-VOS folder)::

    <root>/meta_expressions/<split>/meta_expressions.json
        {"videos": {vid: {"expressions": {"0": {"exp": str, "obj_id": "1"}}, "frames": ["00000", ...]}}}
    <root>/<split>/JPEGImages/<vid>/<frame>.jpg
    <root>/<split>/Annotations/<vid>/<frame>.png   palette PNG, pixel value = object id
    <root>/<split>/meta.json                       {"videos": {vid: {"objects": {"1": {"category", "frames"}}}}}

Also accepted: ``<root>/<split>/meta_expressions.json`` or ``<root>/meta_expressions.json``
with ``JPEGImages/`` and ``Annotations/`` beside it. A frame without an
annotation PNG has empty masks; a video without an ``Annotations/<vid>``
folder (``valid``/``test`` splits) has ``has_masks=False``. Frame sizes come
from the first frame's header when the sample is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data import io as data_io
from data.readers.base import DatasetReader, find_first
from data.readers.masks import PaletteAnnotations, PaletteMaskLoader
from data.types import Expression, VideoSample

#: Decoded annotation PNGs kept per video (several objects of a frame share one read).
ANNOTATION_CACHE_FRAMES = 4


class RefYoutubeVOSReader(DatasetReader):
    name = "refytvos"
    annotation_ext = ".png"

    def __init__(self, root: str | Path, split: str = "train", name: str | None = None,
                 annotation_cache_frames: int = ANNOTATION_CACHE_FRAMES):
        super().__init__(root, split, name)
        self.annotation_cache_frames = annotation_cache_frames
        meta_json = self.data_dir / "meta.json"
        self._objects_meta: dict[str, Any] = {}
        if meta_json.is_file():
            meta = data_io.read_json(meta_json, "meta.json")
            if not isinstance(meta, dict) or not isinstance(meta.get("videos", {}), dict):
                raise data_io.CorruptFileError(meta_json, "expected a JSON object with a 'videos' object")
            self._objects_meta = meta.get("videos", {})
        self.meta_json_path = meta_json

    def _locate(self) -> tuple[Path, Path]:
        released = self.root / "meta_expressions" / self.split / "meta_expressions.json"
        in_split = self.root / self.split / "meta_expressions.json"
        direct = self.root / "meta_expressions.json"
        meta_path = find_first([released, in_split, direct], f"{self.name} {self.split} meta_expressions")
        data_dir = self.root / self.split if meta_path in (released, in_split) else self.root
        return meta_path, data_dir

    def _frames_dir(self, video_id: str) -> Path:
        native = self.data_dir / "JPEGImages" / "480p" / video_id  # original DAVIS layout
        if native.is_dir() and not (self.data_dir / "JPEGImages" / video_id).is_dir():
            return native
        return self.data_dir / "JPEGImages" / video_id

    def _annotations_dir(self, video_id: str) -> Path:
        native = self.data_dir / "Annotations" / "480p" / video_id
        if native.is_dir() and not (self.data_dir / "Annotations" / video_id).is_dir():
            return native
        return self.data_dir / "Annotations" / video_id

    def _object_id(self, video_id: str, exp_id: str, value: Any) -> str:
        text = str(value)
        if not text.isdigit() or not 0 < int(text) < 256:
            raise self._error(video_id, f"expression {exp_id!r}: obj_id {value!r} is not a palette index 1..255")
        return str(int(text))

    def _build_sample(self, video_id: str, entry: dict[str, Any]) -> VideoSample:
        frames = self._frame_names(video_id, entry)
        raw = self._expressions_entry(video_id, entry)
        frame_paths = self._frame_paths(video_id, frames)
        height, width = data_io.image_size(frame_paths[0])
        expressions: dict[str, Expression] = {}
        object_ids: dict[str, None] = {}
        for exp_id, exp in raw.items():
            obj_ids = (self._object_id(video_id, exp_id, exp["obj_id"]),) if "obj_id" in exp else ()
            object_ids.update(dict.fromkeys(obj_ids))
            type_id = self._type_id(video_id, exp_id, exp, obj_ids, known="obj_id" in exp)
            expressions[exp_id] = Expression(exp_id=exp_id, text=exp["exp"], obj_ids=obj_ids, type_id=type_id)
        objects = self._objects_meta.get(video_id, {}).get("objects", {}) if self._objects_meta else {}
        for obj_id in objects:
            object_ids.setdefault(self._object_id(video_id, "meta.json", obj_id))
        ann_dir = self._annotations_dir(video_id)
        has_masks = ann_dir.is_dir()
        loaders = {}
        if has_masks:
            annotations = PaletteAnnotations([ann_dir / f"{name}{self.annotation_ext}" for name in frames],
                                             (height, width), self.annotation_cache_frames)
            loaders = {obj_id: PaletteMaskLoader(annotations, int(obj_id)) for obj_id in object_ids}
        categories = {str(k): v.get("category") for k, v in objects.items() if isinstance(v, dict)}
        return self._sample(video_id, frames, height, width, expressions, mask_loaders=loaders,
                            has_masks=has_masks, extra={"categories": categories})


__all__ = ["RefYoutubeVOSReader", "ANNOTATION_CACHE_FRAMES"]
