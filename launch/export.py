"""Export a kept checkpoint of a run as a HF folder: ``python -m launch.export RUN_DIR [--step K] [--out DIR]``.

Runs on a laptop CPU: no Ray, no process group, no GPU. It reads the actor's sharded DCP
checkpoint ``RUN_DIR/checkpoints/global_step_K/actor`` (any number of ranks; the optimizer
state is not read), builds the model from the run's starting policy (``model.path`` of
``RUN_DIR/config.yaml``, else the run's SFT cold start ``RUN_DIR/sft``, else
``RUN_DIR/tiny_init``; only its config and tokenizer / processor files are read), merges LoRA
adapters if the checkpoint has them, and writes what transformers and vLLM load:
config.json, generation_config.json, model*.safetensors (+ index when sharded), the
tokenizer, processor and chat-template files.

Default step: the newest complete checkpoint. Default output: RUN_DIR/exports/global_step_K
(RUN_DIR/export is the final export the run writes itself at its end).

examples:
  python -m launch.export runs/quickstart                     # newest kept step
  python -m launch.export runs/quickstart --step 100 --out /tmp/qs_step100
  python -m launch.export /copied/run --base /ckpt/Qwen2.5-VL-3B-Instruct   # run copied off the cluster

Load the result with transformers (AutoModelForImageTextToText.from_pretrained(DIR) +
AutoProcessor.from_pretrained(DIR)), vLLM (vllm.LLM(model=DIR)) or evaluate it:
  python -m launch.evaluate run checkpoint=DIR dataset.root=... dataset.format=...

Exit status: 0 written; 2 bad request (no such step -- the message lists the kept steps --,
no starting policy found, output folder not empty without --force).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from data.cli_help import doc_parser


def build_parser():
    parser = doc_parser("python -m launch.export", __doc__)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (trainer.run_dir)")
    parser.add_argument("--step", type=int, default=None, metavar="K",
                        help="checkpoint step to export (default: the newest complete one)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: RUN_DIR/exports/global_step_K); must be absent or empty")
    parser.add_argument("--base", default=None, metavar="DIR",
                        help="HF folder of the starting policy (config.json + tokenizer/processor files); "
                             "default: found from RUN_DIR/config.yaml")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from launch.common import setup_logging
    from rl.export import ExportError, export_checkpoint

    setup_logging()
    try:
        out = export_checkpoint(args.run_dir, step=args.step, out=args.out, base=args.base, force=args.force)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"HF export: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
