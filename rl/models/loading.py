"""Load the policy model and its processor from a local checkpoint directory.

Only local directories are accepted: nothing is ever fetched from the Hub (the
machines have no internet), and a typo in a path fails here with the path named
instead of turning into a confusing download attempt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel

from rl.config import ModelConfig
from rl.models.tiny import build_tiny_qwen25vl
from rl.workers.state_io import normalize_modes

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "CheckpointError",
    "check_checkpoint_dir",
    "check_attn_implementation",
    "load_policy",
    "load_processor",
    "ensure_policy",
]

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class CheckpointError(FileNotFoundError):
    """A checkpoint directory is missing, incomplete or of an unsupported model type."""


def check_checkpoint_dir(path: str | os.PathLike, need_weights: bool = True, need_processor: bool = False) -> Path:
    """Validate a local HF checkpoint directory and return it as a ``Path``.

    Raises :class:`CheckpointError` naming ``path`` and what is missing.
    """
    p = Path(path).expanduser()
    if not str(path):
        raise CheckpointError("model checkpoint path is empty")
    if not p.is_dir():
        raise CheckpointError(f"model checkpoint directory not found: {p}")
    config_file = p / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"not a model checkpoint (no config.json): {p}")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"unreadable config.json in {p}: {exc}") from None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"checkpoint {p} has model_type={model_type!r}; supported: {list(SUPPORTED_MODEL_TYPES)}"
        )
    if need_weights and not any((p / f).is_file() for f in _WEIGHT_FILES):
        raise CheckpointError(f"checkpoint {p} has no weights (expected one of {list(_WEIGHT_FILES)})")
    if need_processor:
        if not any((p / f).is_file() for f in _PROCESSOR_FILES):
            raise CheckpointError(f"checkpoint {p} has no processor config (expected one of {list(_PROCESSOR_FILES)})")
        if not any((p / f).is_file() for f in _TOKENIZER_FILES):
            raise CheckpointError(f"checkpoint {p} has no tokenizer files (expected one of {list(_TOKENIZER_FILES)})")
    return p


ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


def check_attn_implementation(attn_implementation: str, dtype: str = "bfloat16") -> None:
    """Fail early, naming the fix, when an attention implementation cannot run here.

    ``flash_attention_2`` is GPU-only: it needs the ``flash-attn`` package (the ``gpu`` extra,
    docs/gpu.md), a CUDA device and half precision (``model.dtype`` bfloat16 or float16).
    """
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(
            f"model.attn_implementation={attn_implementation!r}; expected one of {list(ATTN_IMPLEMENTATIONS)}"
        )
    if attn_implementation != "flash_attention_2":
        return
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise ImportError(
            "model.attn_implementation=flash_attention_2 needs the flash-attn package, which is not installed "
            "(GPU clusters: `pip install -e '.[gpu]'`, see docs/gpu.md); use model.attn_implementation=sdpa"
        )
    if not torch.cuda.is_available():
        raise RuntimeError(
            "model.attn_implementation=flash_attention_2 runs only on CUDA GPUs and none is visible; "
            "use model.attn_implementation=sdpa"
        )
    if dtype not in ("bfloat16", "float16"):
        raise ValueError(
            f"model.attn_implementation=flash_attention_2 needs model.dtype bfloat16 or float16, got {dtype!r}"
        )


def load_policy(
    path: str | os.PathLike,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    device: str | torch.device = "cpu",
) -> PreTrainedModel:
    """Load a Qwen2.5-VL (or Qwen2-VL) ``...ForConditionalGeneration`` from a local directory.

    ``dtype``: ``float32`` | ``bfloat16`` | ``float16``. The model is returned in eval mode on ``device``.
    ``attn_implementation``: ``sdpa`` | ``eager`` | ``flash_attention_2`` (checked by
    :func:`check_attn_implementation`).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"model dtype {dtype!r} not supported; expected one of {list(_DTYPES)}")
    check_attn_implementation(attn_implementation, dtype)
    p = check_checkpoint_dir(path)
    model = AutoModelForImageTextToText.from_pretrained(
        p, dtype=_DTYPES[dtype], attn_implementation=attn_implementation, local_files_only=True
    )
    return model.to(device).eval()


def load_processor(
    path: str | os.PathLike, min_pixels: int | None = None, max_pixels: int | None = None
):
    """Load the checkpoint's ``Qwen2_5_VLProcessor`` (tokenizer, image and video processors).

    ``min_pixels`` / ``max_pixels`` override the image processor's pixel bounds
    (``ModelConfig.min_pixels`` / ``max_pixels``; ``None`` keeps the checkpoint's).
    """
    p = check_checkpoint_dir(path, need_weights=False, need_processor=True)
    processor = AutoProcessor.from_pretrained(p, local_files_only=True)
    if min_pixels is not None or max_pixels is not None:
        for sub in (getattr(processor, "image_processor", None), getattr(processor, "video_processor", None)):
            if sub is None:
                continue
            lo = min_pixels if min_pixels is not None else sub.size["shortest_edge"]
            hi = max_pixels if max_pixels is not None else sub.size["longest_edge"]
            if not 0 < lo <= hi:
                raise ValueError(f"model.min_pixels={lo} / model.max_pixels={hi}: need 0 < min_pixels <= max_pixels")
            sub.size = type(sub.size)(shortest_edge=lo, longest_edge=hi)
    return processor


def _tiny_complete(path: Path, expected: dict) -> bool:
    info = path / "tiny_build.json"
    if not info.is_file():
        return False
    try:
        if json.loads(info.read_text()) != expected:
            return False
        check_checkpoint_dir(path, need_weights=True, need_processor=True)
    except (OSError, ValueError):
        return False
    return True


def ensure_policy(cfg: ModelConfig, run_dir: str | os.PathLike, image_size: int = 112) -> Path:
    """Path of the initial policy checkpoint.

    ``cfg.path`` set: validated and returned. Empty: a tiny random Qwen2.5-VL built from
    ``cfg.tiny`` under ``<run_dir>/tiny_init`` (reused when a complete build with the same
    settings is already there; rebuilt otherwise). The build goes to a temporary directory
    first and is renamed into place, so concurrent callers never see a half-written model.
    """
    if cfg.path:
        return check_checkpoint_dir(cfg.path, need_weights=True, need_processor=True)
    target = Path(run_dir).expanduser() / "tiny_init"
    expected = {"tiny": asdict(cfg.tiny), "image_size": image_size}
    if _tiny_complete(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny_init.", dir=target.parent))
    try:
        build_tiny_qwen25vl(tmp, cfg.tiny, image_size=image_size)
        normalize_modes(tmp)  # mkdtemp is 0700 and save_pretrained writes its weights 0600
        if target.exists():
            if _tiny_complete(target, expected):  # another process finished first
                return target
            log.warning("rebuilding stale or incomplete tiny model at %s", target)
            shutil.rmtree(target)
        os.rename(tmp, target)
    except FileExistsError:  # lost a race against a concurrent build
        if not _tiny_complete(target, expected):
            raise
    except OSError as exc:
        if not _tiny_complete(target, expected):
            raise CheckpointError(f"could not build the tiny policy at {target}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
