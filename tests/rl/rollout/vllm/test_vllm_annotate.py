"""``launch.annotate`` on the vLLM CPU environment: the Ray Data actors start with the vLLM
environment's interpreter (``rollout.backend=vllm rollout.vllm_python=auto``) and answer greedily
what the transformers backend answers in the main environment, token for token.

Opt-in (``VRS_VLLM_TESTS=1``) and slow, like ``test_vllm_ray.py``. Runs in the main environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from .conftest import HAS_VLLM, VLLM_PYTHON

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(HAS_VLLM, reason="runs in the main environment (the driver's side)"),
    pytest.mark.skipif(not HAS_VLLM and os.environ.get("VRS_VLLM_TESTS") != "1",
                       reason="opt-in: VRS_VLLM_TESTS=1 (set by make test / make test-vllm)"),
]


def test_annotate_on_vllm_actors_equals_the_transformers_backend(tmp_path):
    if not VLLM_PYTHON.is_file():
        pytest.fail(f"VRS_VLLM_TESTS=1 but there is no vLLM environment at {VLLM_PYTHON}: run `make setup-vllm`")
    from data.annotate.runner import run_job
    from data.build import build_samples
    from rl.config import load_config
    from rl.models.loading import ensure_policy
    from tests.ray_helpers import local_ray_cluster

    base = load_config(["recipe=quickstart", f"data.root={tmp_path / 'data'}", "data.synthetic.num_videos=2",
                        "data.max_samples=4", "data.val_fraction=0"])
    samples = tmp_path / "ktg.jsonl"
    build_samples(base.data, samples, reward=base.reward.name, progress=False)
    model = ensure_policy(replace(base.model, path=""), tmp_path, int(max(base.data.input_size)))
    outputs = {}
    with local_ray_cluster(num_cpus=2, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}):
        for recipe in ("quickstart", "quickstart_vllm"):
            cfg = load_config([f"recipe={recipe}", f"trainer.run_dir={tmp_path / recipe}",
                               f"annotate.inputs=[{samples}]", f"annotate.model_path={model}",
                               f"annotate.output_dir={tmp_path / recipe / 'out'}", "annotate.max_tokens=24",
                               "annotate.num_actors=1", "annotate.shard_size=4"])
            summary = run_job(cfg, "generate", progress=False)
            assert summary["done"] == 4, summary
            outputs[recipe] = [json.loads(line) for line in open(summary["output"])]
    hf, vllm = outputs["quickstart"], outputs["quickstart_vllm"]
    assert [r["id"] for r in hf] == [r["id"] for r in vllm]
    assert [r["response"] for r in vllm] == [r["response"] for r in hf]
    assert any(r["response"] for r in hf)
