"""Offline annotation throughput: samples/s of ``launch.annotate generate`` with 1 and with 2
Ray Data actors, on the same samples and the same tiny Qwen2.5-VL, in one run.

Builds synthetic KTG samples (``data.build``), then runs the ``generate`` job (greedy,
``--max-tokens`` tokens) twice into fresh output folders: ``annotate.num_actors=1``, then 2
(each actor one CPU and one torch thread). Time = wall time of :func:`data.annotate.runner.run_job`
(Ray start, actor start-up with model load, generation, merge). The two outputs must be identical
(the check that the pool changed nothing but the speed). On 2 cores the ideal ratio is 2.0.

    python benchmarks/annotate.py [--samples 32] [--shard-size 4] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _config(work: Path, samples: Path, model: str, actors: int, args: argparse.Namespace):
    from rl.config import load_config

    return load_config([
        "recipe=quickstart", f"trainer.run_dir={work}", "tracking.wandb_mode=disabled",
        f"annotate.inputs=[{samples}]", f"annotate.model_path={model}", f"annotate.num_actors={actors}",
        f"annotate.output_dir={work / f'out_{actors}'}", f"annotate.shard_size={args.shard_size}",
        f"annotate.max_tokens={args.max_tokens}", "annotate.batch_size=4", f"cluster.num_cpus={max(2, actors)}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from dataclasses import replace

    from data.annotate.runner import run_job
    from data.build import build_samples
    from rl.config import load_config
    from rl.models.loading import ensure_policy

    with tempfile.TemporaryDirectory(prefix="bench_annotate") as tmp:
        work = Path(tmp)
        base = load_config(["recipe=quickstart", f"data.root={work / 'data'}", "data.synthetic.num_videos=8",
                            f"data.max_samples={args.samples}", "data.val_fraction=0"])
        samples = work / "ktg.jsonl"
        build_samples(base.data, samples, reward=base.reward.name)
        model = str(ensure_policy(replace(base.model, path=""), work, int(max(base.data.input_size))))
        rows = {}
        for actors in (1, 2):
            cfg = _config(work, samples, model, actors, args)
            start = time.perf_counter()
            summary = run_job(cfg, "generate", progress=False)
            seconds = time.perf_counter() - start
            rows[actors] = (summary["annotated"] / seconds, seconds, Path(summary["output"]).read_bytes())
            print(f"{actors} actor(s): {summary['annotated']} samples in {seconds:.1f} s = "
                  f"{rows[actors][0]:.2f} samples/s")
        same = rows[1][2] == rows[2][2]
        print(f"outputs identical: {same}")
        print(f"ratio samples/s 2 actors / 1 actor: {rows[2][0] / rows[1][0]:.2f}x")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
