"""Ref-DAVIS17 reader: Ref-DAVIS17 converted to the Ref-YouTube-VOS layout.

Layout (``root`` = the converted Ref-DAVIS folder, as ``python -m data.convert davis17`` writes
it; splits ``train`` and ``valid``, the default)::

    <root>/meta_expressions/valid/meta_expressions.json   (4 expressions per object: 2 annotators x
                                                          first-frame / full-video)
    <root>/valid/JPEGImages/<vid>/<frame>.jpg
    <root>/valid/Annotations/<vid>/<frame>.png            palette PNG, pixel value = object id
    <root>/valid/meta.json                                object categories (optional)

The original DAVIS resolution folders (``JPEGImages/480p/<vid>``,
``Annotations/480p/<vid>``) are used when the flat ones are absent.
"""

from __future__ import annotations

from pathlib import Path

from data.readers.refytvos import RefYoutubeVOSReader


class DavisReader(RefYoutubeVOSReader):
    name = "davis"

    def __init__(self, root: str | Path, split: str = "valid", name: str | None = None, **kwargs):
        super().__init__(root, split, name, **kwargs)


__all__ = ["DavisReader"]
