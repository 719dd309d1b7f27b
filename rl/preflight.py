"""Pre-flight checks: every file and folder a run will read exists and holds what its reader opens.

Run by the launchers before anything starts (``launch.train``, ``launch.sft``, ``launch.evaluate
run``, ``launch.sweep`` before its trials) and by ``--dry-run``, so that a typo in ``model.path``
is one clear line at start-up instead of a traceback minutes later inside a Ray actor. All
problems are found at once; each names the config key, the path and what is missing::

    model.path = '/ckpt/x': no config.json
    data.root = '/data/mevis/train': no mevis meta_expressions file for split 'train' (looked for: ...)

What is checked (paths with ``://`` are remote and skipped; an empty path means "not used"):

- ``model.path``: an HF checkpoint folder with ``config.json`` and weights (``*.safetensors``,
  ``*.bin`` or a weights index file). Empty = the tiny model built offline (or this run's SFT
  output), nothing to check. It is also the SFT cold start's initial policy and, with the KL
  loss, the reference model (the config has no separate reference path).
- the training data: ``data.samples_path`` (a file) when set, else ``data.root`` laid out as
  the reader of ``data.format`` opens it (its ``meta_expressions`` file and the ``JPEGImages/``
  folder next to it, :mod:`data.readers`); ``data.format=synthetic`` is generated on demand
  and not checked.
- the reward's keyframe segmenter when the reward uses masks
  (:func:`rewards.registry.mask_rewards`) and its backend is SAM2:
  ``reward.segmenter.checkpoint`` (a file) and ``reward.segmenter.sam2_config`` (a config of
  the installed ``sam2`` package).
- video evaluation (``eval.freq > 0``, or ``launch.evaluate run``): ``eval.checkpoint`` and
  ``eval.sampler_model`` (HF folders), the evaluation data set (``eval.dataset_root`` or
  ``data.root``, in ``eval.dataset_format`` or ``data.format``) and those of the extra sets of
  ``eval.datasets`` (each folder, format and split checked once), the SAM2 checkpoint and config
  of ``eval.segmenter`` when SAM2 segments or propagates, ``eval.xmem_checkpoint`` for XMem.

Nothing here imports torch, transformers or Ray, or writes a file.
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rl.config import Config

#: Weight files of an HF checkpoint folder (sharded weights come with an index file).
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


@dataclass(frozen=True)
class Check:
    """One checked input: ``key = path`` and the problem found (None: present)."""

    key: str
    path: str
    problem: Optional[str] = None
    note: str = ""          # e.g. "mevis, split train"; "generated on demand"

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        text = f"{self.key} = {self.path!r}" + (f": {self.problem}" if self.problem else "")
        return f"{text} ({self.note})" if self.note else text


@dataclass
class PreflightReport:
    """The inputs a run reads, each checked on this machine."""

    checks: list[Check] = field(default_factory=list)
    #: ``(root, format, split)`` of the data sets checked so far (each is checked once).
    datasets: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, key: str, path: str, problem: Optional[str], note: str = "") -> None:
        self.checks.append(Check(key, path, problem, note))

    def format(self) -> str:
        """One line per checked input, ``ok`` or ``MISSING`` first (for ``--dry-run``)."""
        if not self.checks:
            return "input files: none to check (tiny model and synthetic data are made on demand)"
        lines = ["input files (checked on this machine):"]
        lines += [f"  {'ok' if c.ok else 'MISSING':<7}  {c}" for c in self.checks]
        return "\n".join(lines)

    def error_text(self) -> str:
        """The problems as one config-error message: one line for one problem, else a header and a line each."""
        problems = self.problems
        if len(problems) == 1:
            return str(problems[0])
        return f"{len(problems)} inputs are missing or incomplete:\n" + "\n".join(f"  {p}" for p in problems)


# ------------------------------------------------------------------ single paths


def _remote(path: str) -> bool:
    return "://" in path


def hf_folder_problem(path: str) -> Optional[str]:
    """What an HF checkpoint folder lacks (``config.json``, weights), or None when it is complete."""
    p = Path(path).expanduser()
    if not p.exists():
        return "folder does not exist"
    if not p.is_dir():
        return "not a folder (expected an HF checkpoint folder with config.json and weights)"
    missing = []
    if not (p / "config.json").is_file():
        missing.append("config.json")
    if not any(any(p.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors, *.bin or an index file)")
    return f"no {' and no '.join(missing)}" if missing else None


def file_problem(path: str) -> Optional[str]:
    """``"file does not exist"`` / ``"is a folder, expected a file"``, or None."""
    p = Path(path).expanduser()
    if not p.exists():
        return "file does not exist"
    if not p.is_file():
        return "is a folder, expected a file"
    return None


def sam2_config_problem(name: str) -> Optional[str]:
    """Whether the ``sam2`` package is installed and ships config ``name`` (found without importing sam2)."""
    if Path(name).is_absolute():
        return None if Path(name).is_file() else "SAM2 config file does not exist"
    spec = importlib.util.find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        return "the sam2 package is not installed (SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0)"
    package = Path(list(spec.submodule_search_locations)[0])
    if not (package / name).is_file():
        shipped = sorted(str(p.relative_to(package)) for p in package.glob("configs/**/*.yaml"))
        return f"not a config of the installed sam2 package ({package}); it ships {shipped}"
    return None


def default_split(fmt: str) -> str:
    """The split the reader of ``fmt`` opens when none is given (``valid`` for davis, else ``train``)."""
    from data.readers import READERS

    cls = READERS[fmt][0] if fmt in READERS else None
    return inspect.signature(cls.__init__).parameters["split"].default if cls else "train"


def dataset_problem(root: str, fmt: str, split: Optional[str]) -> tuple[Optional[str], str]:
    """``(problem, note)`` for a data set folder as the reader of ``fmt`` opens it.

    The reader's own file lookup is used (its ``meta_expressions`` candidates), without reading
    the metadata: the metadata file and a ``JPEGImages/`` folder next to it must exist.
    ``split`` None: the reader's default split.
    """
    from data.io import MissingFileError
    from data.readers import READERS

    if fmt not in READERS:
        return f"unknown data set format {fmt!r}", ""
    cls, name = READERS[fmt]
    split = split or default_split(fmt)
    note = f"{fmt}, split {split}"
    p = Path(root).expanduser()
    if not p.exists():
        return "folder does not exist", note
    if not p.is_dir():
        return "not a folder", note
    reader = cls.__new__(cls)          # only its file lookup: __init__ would read the metadata
    reader.root, reader.split, reader.name = p, split, name
    try:
        meta_path, data_dir = reader._locate()
    except MissingFileError as exc:
        looked = str(exc).split("(looked for: ", 1)[-1].split(")")[0]
        return f"no {fmt} meta_expressions file for split {split!r} (looked for: {looked})", note
    frames = Path(data_dir) / "JPEGImages"
    if not frames.is_dir():
        return f"no JPEGImages/ folder next to {Path(meta_path).name} (expected {frames})", note
    return None, note


# ------------------------------------------------------------------ the run's inputs


def _hf(report: PreflightReport, key: str, path: str) -> None:
    if path and not _remote(path):
        report.add(key, path, hf_folder_problem(path))


def _file(report: PreflightReport, key: str, path: str) -> None:
    if path and not _remote(path):
        report.add(key, path, file_problem(path))


def _dataset(report: PreflightReport, key: str, root: str, fmt: str, split: Optional[str],
             what: str = "training data") -> None:
    resolved = (root, fmt, split or (default_split(fmt) if fmt != "synthetic" else ""))
    if resolved in report.datasets:        # the same folder, format and split was checked already
        return
    report.datasets.add(resolved)
    if fmt == "synthetic":
        report.add(key, root, None, f"{what}: synthetic, generated on demand")
    elif root and not _remote(root):
        problem, note = dataset_problem(root, fmt, split)
        report.add(key, root, problem, f"{what}: {note}")


def _sam2(report: PreflightReport, prefix: str, segmenter) -> None:
    _file(report, f"{prefix}.checkpoint", segmenter.checkpoint)
    report.add(f"{prefix}.sam2_config", segmenter.sam2_config, sam2_config_problem(segmenter.sam2_config))


def training_inputs(cfg: Config, report: PreflightReport, reward: bool = True) -> None:
    """``model.path``, the training data and (``reward``) the reward segmenter's SAM2 files."""
    _hf(report, "model.path", cfg.model.path)
    if cfg.data.samples_path:
        _file(report, "data.samples_path", cfg.data.samples_path)
    else:
        _dataset(report, "data.root", cfg.data.root, cfg.data.format, cfg.data.split)
    if cfg.sft.samples_path:
        _file(report, "sft.samples_path", cfg.sft.samples_path)
    if reward and cfg.reward.segmenter.backend == "sam2":
        from rewards.registry import mask_rewards

        if cfg.reward.name in mask_rewards():
            _sam2(report, "reward.segmenter", cfg.reward.segmenter)


def evaluation_inputs(cfg: Config, report: PreflightReport, extra_sets: bool = True) -> None:
    """What the video evaluation loads: checkpoints, the evaluation data set(s) (the main one and,
    with ``extra_sets``, every ``eval.datasets`` item, resolved as :mod:`rl.eval.datasets` does),
    and the SAM2 / XMem weights."""
    ev = cfg.eval
    _hf(report, "eval.checkpoint", ev.checkpoint)
    _hf(report, "eval.sampler_model", ev.sampler_model)
    main_key = "eval.dataset_root" if ev.dataset_root else "data.root"
    root, fmt = ev.dataset_root or cfg.data.root, ev.dataset_format or cfg.data.format
    _dataset(report, main_key, root, fmt, ev.dataset_split or ("valid" if fmt == "synthetic" else None),
             what="evaluation data")
    for i, extra in enumerate(ev.datasets if extra_sets else []):
        set_fmt = extra.dataset_format or fmt
        _dataset(report, f"eval.datasets[{i}].dataset_root" if extra.dataset_root else main_key,
                 extra.dataset_root or root, set_fmt,
                 extra.dataset_split or ("valid" if set_fmt == "synthetic" else None),
                 what=f"evaluation set {extra.name!r}")
    if "sam2" in (ev.segmenter.backend, ev.propagator):
        _sam2(report, "eval.segmenter", ev.segmenter)
    if ev.propagator == "xmem":
        _file(report, "eval.xmem_checkpoint", ev.xmem_checkpoint)


def located_meta(root: str, fmt: str, split: Optional[str]) -> Optional[Path]:
    """The metadata file the reader of ``fmt`` would open for ``split`` (None: not found / not checkable)."""
    from data.io import MissingFileError
    from data.readers import READERS

    if fmt not in READERS or not root or _remote(root) or not Path(root).is_dir():
        return None
    cls, name = READERS[fmt]
    reader = cls.__new__(cls)
    reader.root, reader.split, reader.name = Path(root).expanduser(), split or default_split(fmt), name
    try:
        return Path(reader._locate()[0]).resolve()
    except MissingFileError:
        return None


def split_confusion(cfg: Config, report: PreflightReport) -> None:
    """The evaluation split must not open the training split's file (e.g. ``data.root=/data/mevis/train``:
    the MeViS reader then finds ``train/meta_expressions.json`` for every split, and the run would
    evaluate on its own training videos)."""
    ev = cfg.eval
    root, fmt = ev.dataset_root or cfg.data.root, ev.dataset_format or cfg.data.format
    split = ev.dataset_split or default_split(fmt)
    if cfg.data.samples_path or fmt == "synthetic" or fmt != cfg.data.format or split == (cfg.data.split or
                                                                                            default_split(fmt)):
        return
    train_meta = located_meta(cfg.data.root, cfg.data.format, cfg.data.split)
    if train_meta is not None and located_meta(root, fmt, split) == train_meta:
        report.add("eval.dataset_split", root, f"split {split!r} opens the training split's file {train_meta}; "
                   "data.root should be the data set folder that holds both splits (e.g. /data/mevis, not "
                   "/data/mevis/train)")


def preflight(cfg: Config, training: bool = True, reward: bool = True, evaluation: Optional[bool] = None,
              extra_sets: bool = True) -> PreflightReport:
    """Check the inputs of a run with absolute paths (:func:`rl.run_setup.absolutize`).

    training: model and training data (``launch.train``, ``launch.sft``); reward: the reward
    segmenter's files (not for the SFT cold start); evaluation: the video evaluation's inputs
    (None: when ``eval.freq > 0``; ``launch.evaluate run`` passes True and ``training=False``);
    extra_sets: the ``eval.datasets`` sets too (``launch.evaluate run`` evaluates only the main set).
    """
    report = PreflightReport()
    if training:
        training_inputs(cfg, report, reward=reward)
    if evaluation if evaluation is not None else cfg.eval.freq > 0:
        evaluation_inputs(cfg, report, extra_sets=extra_sets)
        if training:
            split_confusion(cfg, report)
    return report


__all__ = ["Check", "PreflightReport", "WEIGHT_PATTERNS", "hf_folder_problem", "file_problem", "sam2_config_problem",
           "default_split", "dataset_problem", "located_meta", "split_confusion", "training_inputs", "evaluation_inputs",
           "preflight"]
