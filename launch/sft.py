"""CoT-SFT cold start: ``python -m launch.sft recipe=NAME key=value ...``.

Builds (or finds) the training samples and the initial policy (``model.path``, or a
tiny Qwen2.5-VL built offline), fine-tunes it on the samples' reasoning+answer
targets (full, or LoRA with ``sft.lora.rank > 0``) and writes an HF checkpoint to
``sft.output_dir`` (default ``<trainer.run_dir>/sft``): the GRPO starting point.
An existing checkpoint is reused only when it was made with the same settings
(:mod:`rl.cold_start`); ``--force`` trains again.
"""

from __future__ import annotations

import sys
from typing import Sequence

from launch.common import config_from_argv, save_resolved_config, setup_logging, shutdown_ray
from rl.cold_start import ensure_sft_checkpoint

__all__ = ["ensure_sft_checkpoint", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg, flags = config_from_argv(list(sys.argv[1:] if argv is None else argv))
    save_resolved_config(cfg, "sft_config.yaml")
    try:
        path = ensure_sft_checkpoint(cfg, force="--force" in flags)
    finally:
        shutdown_ray()
    print(f"SFT checkpoint: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
