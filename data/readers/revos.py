"""ReVOS reader (released layout); also reads the synthetic data set.

Layout (one folder for all splits; ``root`` may also be ``<root>/<split>``
holding a plain ``meta_expressions.json``, as the synthetic generator writes)::

    <root>/meta_expressions_<split>_.json  like MeViS plus per video "height", "width" and
                                           per expression "type_id" (0 referring, 1 reasoning, 2 no target)
    <root>/mask_dict.json                  {anno_id (str): [COCO RLE or null per frame]}
    <root>/mask_dict_foreground.json       {vid: {"masks_rle": [RLE per frame], "foreground_ratio": [...]}}
    <root>/JPEGImages/<vid>/<frame>.jpg    (ReVOS video ids contain '/', e.g. "UVO/all/<id>")

``mask_dict_foreground.json`` becomes :attr:`VideoSample.foreground_loader`
(parsed once, on first use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from data.readers.masks import ForegroundLoader, LazyJsonFile
from data.readers.mevis import MevisReader

FOREGROUND_NAME = "mask_dict_foreground.json"


class RevosReader(MevisReader):
    name = "revos"

    def __init__(self, root: str | Path, split: str = "train", name: str | None = None):
        super().__init__(root, split, name)
        fg_path = self.data_dir / FOREGROUND_NAME
        self.foreground: Optional[LazyJsonFile] = (
            LazyJsonFile(fg_path, "foreground mask dict") if fg_path.is_file() else None
        )

    def _meta_candidates(self) -> list[Path]:
        return [
            self.root / f"meta_expressions_{self.split}_.json",
            self.root / f"meta_expressions_{self.split}.json",
            self.root / self.split / "meta_expressions.json",
            self.root / "meta_expressions.json",
        ]

    def _foreground_loader(self, video_id: str, shape: tuple[int, int]) -> Optional[ForegroundLoader]:
        if self.foreground is None:
            return None
        return ForegroundLoader(self.foreground, video_id, shape)


__all__ = ["RevosReader", "FOREGROUND_NAME"]
