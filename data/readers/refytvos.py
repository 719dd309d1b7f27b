"""Ref-YouTube-VOS reader (released layout); Ref-DAVIS17 converted to it uses the same code.

Layout (``root`` = the Ref-YouTube-VOS folder)::

    <root>/meta_expressions/<split>/meta_expressions.json
        {"videos": {vid: {"expressions": {"0": {"exp": str, "obj_id": "1"}}, "frames": ["00000", ...]}}}
    <root>/<split>/JPEGImages/<vid>/<frame>.jpg
    <root>/<split>/Annotations/<vid>/<frame>.png   palette PNG, pixel value = object id
    <root>/<split>/meta.json                       {"videos": {vid: {"objects": {"1": {"category", "frames"}}}}}

Also accepted: ``<root>/<split>/meta_expressions.json`` or ``<root>/meta_expressions.json``
with ``JPEGImages/`` and ``Annotations/`` beside it. A frame without an
annotation PNG has empty masks. Frame sizes come from the first frame's header
when the sample is built.

Videos without ground truth. The released ``valid`` expressions file lists 507 videos, 305
of which are the ``test`` videos (also listed in ``meta_expressions/test/meta_expressions.json``;
their masks are never released); the valid split proper is the other 202. When that test
file is present, its videos are dropped from every other split (one INFO line with the
count). Otherwise, a split where some videos have an ``Annotations/<vid>`` folder and others
do not keeps only the annotated ones (one warning: the count and the first ids). A split
where no video has annotations (``valid``/``test`` as released, scored by the official
server) keeps all of them, with ``has_masks=False``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from data import io as data_io
from data.readers.base import DatasetReader, find_first
from data.readers.masks import PaletteAnnotations, PaletteMaskLoader
from data.types import Expression, VideoSample

#: Decoded annotation PNGs kept per video (several objects of a frame share one read).
ANNOTATION_CACHE_FRAMES = 4
#: Split whose released expressions file lists the videos without public masks.
TEST_SPLIT = "test"
#: Video ids named in a warning about dropped videos.
SHOWN_IDS = 5

logger = logging.getLogger("data.readers")


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
        self.dropped_test_videos = self._drop_test_videos()
        self.dropped_unannotated = self._drop_unannotated()

    def _drop_test_videos(self) -> list[str]:
        """Drop the videos listed in ``meta_expressions/test/meta_expressions.json`` (test-only, no masks)."""
        test_meta = self.root / "meta_expressions" / TEST_SPLIT / "meta_expressions.json"
        if self.split == TEST_SPLIT or not test_meta.is_file():
            return []
        meta = data_io.read_json(test_meta, f"{self.name} test expressions file")
        if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
            raise data_io.CorruptFileError(test_meta, "expected a JSON object with a 'videos' object")
        dropped = [vid for vid in self._videos if vid in meta["videos"]]
        if dropped:
            self._videos = {vid: entry for vid, entry in self._videos.items() if vid not in meta["videos"]}
            logger.info("%s %s: %d test-only videos (listed in %s, masks not released) left out; %d remain",
                        self.name, self.split, len(dropped), test_meta, len(self._videos))
        return dropped

    def _drop_unannotated(self) -> list[str]:
        """When only some videos have an ``Annotations/<vid>`` folder, drop the others (one warning)."""
        missing = [vid for vid in self._videos if not self._annotations_dir(vid).is_dir()]
        if not missing or len(missing) == len(self._videos):
            return []  # all annotated, or a split released without masks (kept, has_masks=False)
        gone = set(missing)
        self._videos = {vid: entry for vid, entry in self._videos.items() if vid not in gone}
        logger.warning("%s %s: %d of %d videos have no Annotations/<video> folder and are left out (%s%s)",
                       self.name, self.split, len(missing), len(missing) + len(self._videos),
                       ", ".join(missing[:SHOWN_IDS]), ", ..." if len(missing) > SHOWN_IDS else "")
        return missing

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


__all__ = ["RefYoutubeVOSReader", "ANNOTATION_CACHE_FRAMES", "TEST_SPLIT"]
