"""The split-environment production path on CPU: the trainer in the main environment, the vLLM
rollout actor started by Ray with the vLLM environment's interpreter (``runtime_env
py_executable``), weights streamed from the FSDP2 actor's rank 0 straight into the engine.

Opt-in (``VRS_VLLM_TESTS=1``, set by ``make test`` and ``make test-vllm``) and slow: it needs ``.venv-vllm``
(``make setup-vllm``) and starts Ray. Runs in the main environment.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from .conftest import HAS_VLLM, REPO, VLLM_PYTHON, build_checkpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(HAS_VLLM, reason="runs in the main environment (the trainer's side)"),
    pytest.mark.skipif(not HAS_VLLM and os.environ.get("VRS_VLLM_TESTS") != "1",
                       reason="opt-in: VRS_VLLM_TESTS=1 (set by make test / make test-vllm)"),
]


@pytest.fixture(scope="module", autouse=True)
def _vllm_environment():
    """Asked for (VRS_VLLM_TESTS=1) but not built is a failure, not a silent skip."""
    if not VLLM_PYTHON.is_file():
        pytest.fail(f"VRS_VLLM_TESTS=1 but there is no vLLM environment at {VLLM_PYTHON}: run `make setup-vllm`")


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")),
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


def test_actor_rank0_streams_weights_into_a_vllm_actor_of_the_other_environment(ray_local, tmp_path, image_prompts):
    """Rollout actor serves checkpoint A; the FSDP2 actor (checkpoint B) pushes its weights in
    small buckets; the engine's sampled-token log-probs then equal the main environment's
    transformers teacher forcing under B."""
    ray = ray_local
    from rl.config import ActorConfig, ModelConfig, RolloutConfig
    from rl.models.inputs import encode_for_training
    from rl.models.loading import load_policy, load_processor
    from rl.models.logprobs import policy_logprobs
    from rl.rollout.base import RolloutOutput, SamplingParams
    from rl.rollout.vllm_env import rollout_runtime_env
    from rl.workers.policy_group import PolicyActor
    from rl.workers.rollout_group import RolloutActor

    dir_a = build_checkpoint(tmp_path / "a", sharpen_seed=1)
    dir_b = build_checkpoint(tmp_path / "b", sharpen_seed=2)
    cfg = RolloutConfig(backend="vllm", vllm_python=str(VLLM_PYTHON), max_prompt_length=512, max_response_length=32)
    rollout = ray.remote(RolloutActor).options(num_cpus=1, runtime_env=rollout_runtime_env(cfg.vllm_python)).remote(
        cfg, str(dir_a), ModelConfig(), "cpu", 0, 1)
    actor = ray.remote(PolicyActor).options(num_cpus=1).remote(0, 1, 1)
    addr, port = ray.get(actor.address.remote())
    ray.get(actor.setup.remote(addr, port, model_path=str(dir_b), model_cfg=ModelConfig(), actor_cfg=ActorConfig(),
                               role="actor", rollout_n=4))
    assert ray.get(rollout.ping.remote())

    sent, _ = ray.get(actor.push_weights.remote([rollout], 0.05, True))  # ~50 KB buckets
    assert sent > 0
    params = SamplingParams(n=4, temperature=1.0, max_tokens=12, seed=7)
    pieces = [ray.get(ref) for ref in rollout.generate_stream.remote(image_prompts, params)]  # streamed back
    assert sorted(first for first, _, _ in pieces) == [0, 1]
    out = RolloutOutput.concat([piece for _, piece, _ in sorted(pieces, key=lambda p: p[0])])

    processor = load_processor(dir_b)
    batch = encode_for_training(processor, [p for p in image_prompts for _ in range(4)], out.token_ids)
    mask = batch.response_mask.bool()
    ref = out.padded_logprobs(batch.response_width)
    with torch.no_grad():
        lp_b, _ = policy_logprobs(load_policy(dir_b), batch)
        lp_a, _ = policy_logprobs(load_policy(dir_a), batch)
    assert (lp_b - ref)[mask].abs().max() < 1e-4
    assert (lp_a - ref)[mask].abs().max() > 0.1
    ray.kill(rollout)
    ray.kill(actor)


def test_quickstart_grpo_with_the_vllm_rollout_actor(tmp_path):
    """A few GRPO steps of the quickstart recipe with rollout.backend=vllm (rollout actor in
    .venv-vllm, everything else in the main environment): every step logged, weights synced."""
    from tests.e2e.conftest import Launcher

    launcher = Launcher(tmp_path)
    try:
        launcher.run("launch.train", "recipe=quickstart_vllm", "cluster=local_cpu", "data.root=data/synthetic",
                     "data.synthetic.num_videos=6", "data.synthetic.num_frames=4", "sft.max_steps=3",
                     "trainer.run_dir=runs/vllm", "trainer.total_steps=3", "trainer.train_batch_size=4",
                     "actor.ppo_mini_batch_size=2", "rollout.n=4", "rollout.max_response_length=48",
                     "trainer.save_freq=3", "trainer.val_freq=3", "trainer.val_num_prompts=4", "eval.freq=0",
                     "trainer.val_before_train=false",
                     "tracking.wandb_mode=disabled", f"rollout.vllm_python={VLLM_PYTHON}",
                     timeout=1200)
    finally:
        launcher.cleanup()
    rows = [json.loads(line) for line in (tmp_path / "runs" / "vllm" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("critic/score/mean", "actor/pg_loss", "timing_s/gen", "timing_s/update_weights", "perf/weight_sync_mb"):
        assert key in rows[-1], key
    assert rows[-1]["perf/weight_sync_mb"] > 0 and "val/score/mean" in rows[-1]
