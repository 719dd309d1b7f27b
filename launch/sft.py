"""CoT-SFT cold start: ``python -m launch.sft recipe=NAME key=value ...``.

Builds (or finds) the training samples and the initial policy (``model.path``, or a
tiny Qwen2.5-VL built offline), fine-tunes it on the samples' reasoning+answer
targets (full, or LoRA with ``sft.lora.rank > 0``) and writes an HF checkpoint to
``sft.output_dir`` (default ``<trainer.run_dir>/sft``): the GRPO starting point.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from launch.common import (config_from_argv, image_size, init_ray, prepare_data, save_resolved_config,
                           setup_logging, shutdown_ray)
from rl.config import Config

log = logging.getLogger("launch.sft")


def ensure_sft_checkpoint(cfg: Config, force: bool = False) -> Path:
    """The SFT checkpoint of this run: reused when complete, trained otherwise."""
    from rl.models.loading import ensure_policy
    from rl.sft import is_complete, run_sft, sft_output_dir

    out = sft_output_dir(cfg)
    if not force and cfg.sft.skip_if_exists and is_complete(out):
        log.info("SFT checkpoint found: %s", out)
        return out
    data = prepare_data(cfg)
    init_path = ensure_policy(cfg.model, cfg.trainer.run_dir, image_size(cfg))
    log.info("SFT: %d samples, init %s -> %s", len(data.train), init_path, out)
    init_ray(cfg)
    return run_sft(cfg, str(init_path), data.train)


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
