"""Convert a released data set into the layout one of our readers opens.

Sub-commands:

  davis17   DAVIS-2017 frames and masks + the Ref-DAVIS17 referring expressions
            -> the Ref-YouTube-VOS layout, read with data.format=davis (splits train, valid)

    python -m data.convert davis17 --davis-root DAVIS --expressions davis_text_annotations --out OUT
        [--copy] [--annotations Annotations] [--resolution 480p] [--semantics davis_semantics.json] [--force]

Inputs of davis17:

  DAVIS/JPEGImages/480p/<video>/<frame>.jpg     (--davis-root: DAVIS/ or the folder holding it)
  DAVIS/Annotations/480p/<video>/<frame>.png    palette PNG, pixel value = object id (1, 2, ...)
  DAVIS/ImageSets/2017/train.txt, val.txt       one video name per line
  davis_text_annotations/Davis17_annot1.txt, Davis17_annot1_full_video.txt,
                         Davis17_annot2.txt, Davis17_annot2_full_video.txt
      one expression a line: <video> <object id> "<expression>" (annotator 1 / 2; a description
      of the first frame / of the whole video); read as UTF-8, else Latin-1

Output (OUT):

  meta_expressions/<split>/meta_expressions.json   {"videos": {video: {"expressions":
                                                    {"0": {"exp", "obj_id": "1"}, ...}, "frames": [...]}}}
  <split>/JPEGImages/<video>    link to (or, with --copy, a copy of) the DAVIS frames folder
  <split>/Annotations/<video>   the same for the masks
  <split>/meta.json             {"videos": {video: {"objects": {"1": {"category"}}}}}

DAVIS ``val`` becomes ``valid``. A video's expressions are ordered by object, then annotator 1
first-frame, annotator 1 full-video, annotator 2 first-frame, annotator 2 full-video (ids 0, 1,
2, ... in that order; a missing one is skipped). Malformed lines are skipped, counted and logged;
three video names misspelt in the released files (clasic-car, dog-scale, motor-bike) are mapped
to the DAVIS names. Exit status: 0 converted (counts printed), 2 bad arguments or inputs.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from data import io as data_io
from data.cli_help import doc_parser

logger = logging.getLogger(__name__)

#: Expression files of Ref-DAVIS17 in output order: (file name, annotator, what it describes).
DAVIS17_EXPRESSION_FILES = (
    ("Davis17_annot1.txt", 1, "first_frame"),
    ("Davis17_annot1_full_video.txt", 1, "full_video"),
    ("Davis17_annot2.txt", 2, "first_frame"),
    ("Davis17_annot2_full_video.txt", 2, "full_video"),
)
#: Video names misspelt in the released expression files -> the DAVIS names.
DAVIS17_NAME_FIXES = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
#: DAVIS split file -> output split.
DAVIS17_SPLITS = {"train": "train", "val": "valid"}
#: ``<video> <object id> "<expression>"``.
_LINE = re.compile(r'^(\S+)\s+(\d+)\s+"(.*)"$')
#: Names shown in a warning listing videos.
SHOWN = 5


class ConvertError(Exception):
    """A missing or unusable input (the CLI prints it and exits with status 2)."""


@dataclass
class ConvertReport:
    """What a conversion wrote and skipped."""

    out: Path
    videos: Counter = field(default_factory=Counter)          # split -> videos written
    objects: Counter = field(default_factory=Counter)         # split -> objects with an expression
    expressions: Counter = field(default_factory=Counter)     # split -> expressions
    malformed_lines: int = 0
    renamed_lines: int = 0
    unknown_videos: list[str] = field(default_factory=list)   # in the expressions, in no split file
    videos_without_expressions: list[str] = field(default_factory=list)
    videos_without_frames: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"converted Ref-DAVIS17 -> {self.out}"]
        for split in self.videos:
            lines.append(f"  {split}: {self.videos[split]} videos, {self.objects[split]} objects, "
                         f"{self.expressions[split]} expressions")
        lines.append(f"  skipped: {self.malformed_lines} malformed lines, {len(self.unknown_videos)} videos not in "
                     f"the split files, {len(self.videos_without_expressions)} videos without expressions, "
                     f"{len(self.videos_without_frames)} videos without frames; {self.renamed_lines} lines with a "
                     "misspelt video name fixed")
        return "\n".join(lines)


@dataclass(frozen=True)
class Phrase:
    """One line of a Ref-DAVIS17 expression file."""

    video: str
    obj_id: int
    text: str


def read_expression_file(path: Path, report: ConvertReport) -> list[Phrase]:
    """The expressions of one file, in file order; malformed lines are logged, counted and skipped."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # the annotator-2 files are Latin-1
    phrases = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        match = _LINE.match(line)
        obj_id = int(match[2]) if match else 0
        if not match or not match[3].strip() or not 0 < obj_id < 256:
            report.malformed_lines += 1
            logger.warning("%s:%d: malformed line skipped (expected: <video> <object id 1..255> \"<expression>\"): %r",
                           path, number, line[:120])
            continue
        video = match[1]
        if video in DAVIS17_NAME_FIXES:
            video = DAVIS17_NAME_FIXES[video]
            report.renamed_lines += 1
        phrases.append(Phrase(video, obj_id, match[3].strip()))
    return phrases


def _read_split_file(path: Path) -> list[str]:
    if not path.is_file():
        raise ConvertError(f"missing DAVIS split file {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _find_expression_dir(folder: Path) -> Path:
    for candidate in (folder, folder / "davis_text_annotations"):
        if all((candidate / name).is_file() for name, _, _ in DAVIS17_EXPRESSION_FILES):
            return candidate
    names = ", ".join(name for name, _, _ in DAVIS17_EXPRESSION_FILES)
    raise ConvertError(f"{folder} does not hold the Ref-DAVIS17 expression files ({names})")


def _place(source: Path, target: Path, copy: bool, force: bool) -> None:
    """Link (or copy) the folder ``source`` to ``target``."""
    if target.is_symlink() or target.exists():
        if not force:
            raise ConvertError(f"{target} exists; pass --force to replace it")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copytree(source, target)
    else:
        target.symlink_to(source.resolve(), target_is_directory=True)


def convert_davis17(davis_root: str | Path, expressions: str | Path, out: str | Path, copy: bool = False,
                    annotations: str = "Annotations", resolution: str = "480p",
                    semantics: Optional[str | Path] = None, force: bool = False) -> ConvertReport:
    """Write Ref-DAVIS17 in the Ref-YouTube-VOS layout under ``out`` (see the module docstring)."""
    davis_root, out = Path(davis_root), Path(out)
    if not (davis_root / "JPEGImages").is_dir() and (davis_root / "DAVIS" / "JPEGImages").is_dir():
        davis_root = davis_root / "DAVIS"  # the folder the DAVIS zip files were extracted into
    frames_root = davis_root / "JPEGImages" / resolution
    masks_root = davis_root / annotations / resolution
    for folder in (frames_root, masks_root):
        if not folder.is_dir():
            raise ConvertError(f"missing DAVIS folder {folder}")
    text_dir = _find_expression_dir(Path(expressions))
    categories = data_io.read_json(semantics, "DAVIS semantics file") if semantics else {}
    report = ConvertReport(out=out)
    # video -> object id -> expressions in output order: reading the files one after the other
    # keeps annotator 1 before 2 and the first-frame description before the full-video one
    by_video: dict[str, dict[int, list[str]]] = {}
    for name, _, _ in DAVIS17_EXPRESSION_FILES:
        for phrase in read_expression_file(text_dir / name, report):
            by_video.setdefault(phrase.video, {}).setdefault(phrase.obj_id, []).append(phrase.text)
    split_videos = {out_split: _read_split_file(davis_root / "ImageSets" / "2017" / f"{name}.txt")
                    for name, out_split in DAVIS17_SPLITS.items()}
    listed = {video for videos in split_videos.values() for video in videos}
    report.unknown_videos = sorted(set(by_video) - listed)
    if report.unknown_videos:
        logger.warning("%d video(s) of the expression files are in no DAVIS split file, skipped: %s",
                       len(report.unknown_videos), ", ".join(report.unknown_videos[:SHOWN]))
    for split, videos in split_videos.items():
        meta: dict[str, dict] = {}
        objects_meta: dict[str, dict] = {}
        for video in videos:
            frames_dir, masks_dir = frames_root / video, masks_root / video
            frames = sorted(p.stem for p in frames_dir.glob("*.jpg")) if frames_dir.is_dir() else []
            if not frames or not masks_dir.is_dir():
                report.videos_without_frames.append(video)
                continue
            if video not in by_video:
                report.videos_without_expressions.append(video)
                continue
            objects = by_video[video]
            texts = [(obj_id, text) for obj_id in sorted(objects) for text in objects[obj_id]]
            meta[video] = {"expressions": {str(e): {"exp": text, "obj_id": str(obj_id)}
                                           for e, (obj_id, text) in enumerate(texts)},
                           "frames": frames}
            video_categories = categories.get(video, {}) if isinstance(categories, dict) else {}
            objects_meta[video] = {"objects": {str(obj_id): {"category": video_categories.get(str(obj_id))}
                                               for obj_id in sorted(objects)}}
            _place(frames_dir, out / split / "JPEGImages" / video, copy, force)
            _place(masks_dir, out / split / "Annotations" / video, copy, force)
            report.videos[split] += 1
            report.objects[split] += len(objects)
            report.expressions[split] += len(texts)
        data_io.write_json_atomic(out / split / "meta.json", {"videos": objects_meta})
        data_io.write_json_atomic(out / "meta_expressions" / split / "meta_expressions.json", {"videos": meta})
    for what, videos in (("without frames or masks", report.videos_without_frames),
                         ("without expressions", report.videos_without_expressions)):
        if videos:
            logger.warning("%d DAVIS video(s) %s skipped: %s", len(videos), what, ", ".join(videos[:SHOWN]))
    return report


# ---------------------------------------------------------------------------- CLI


def build_parser():
    parser = doc_parser("python -m data.convert", __doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    davis = commands.add_parser("davis17", help="DAVIS-2017 + Ref-DAVIS17 expressions -> Ref-YouTube-VOS layout",
                                description="Convert DAVIS-2017 and the Ref-DAVIS17 expressions into the "
                                            "Ref-YouTube-VOS layout (data.format=davis).")
    davis.add_argument("--davis-root", required=True,
                       help="DAVIS folder (JPEGImages/, Annotations/, ImageSets/) or the folder holding DAVIS/")
    davis.add_argument("--expressions", required=True,
                       help="folder with the four Davis17_annot*.txt files (or its parent)")
    davis.add_argument("--out", required=True, help="output folder (data.root of data.format=davis)")
    davis.add_argument("--copy", action="store_true", help="copy frames and masks instead of linking them")
    davis.add_argument("--annotations", default="Annotations",
                       help="mask folder under --davis-root (default Annotations; e.g. Annotations_unsupervised)")
    davis.add_argument("--resolution", default="480p", help="resolution folder (default 480p)")
    davis.add_argument("--semantics", default=None, help="optional davis_semantics.json: object categories")
    davis.add_argument("--force", action="store_true", help="replace frames/masks already in --out")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = convert_davis17(args.davis_root, args.expressions, args.out, copy=args.copy,
                                 annotations=args.annotations, resolution=args.resolution,
                                 semantics=args.semantics, force=args.force)
    except (ConvertError, data_io.MissingFileError, data_io.CorruptFileError) as exc:
        print(f"data.convert davis17: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


__all__ = ["convert_davis17", "read_expression_file", "ConvertReport", "ConvertError", "Phrase",
           "DAVIS17_EXPRESSION_FILES", "DAVIS17_NAME_FIXES", "DAVIS17_SPLITS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
