"""Token-budget and packed micro-batches give the padded path's log-probs, losses and gradients.

Plans are checked against hand-made groupings and brute-force invariants; the worker's update
is compared mode against mode (fixed-size padded micro-batches = today's path) on random
response lengths, over several mini-batches, on one rank in this process and on 2 gloo ranks.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rl.config import ActorConfig, ModelConfig, OptimConfig, SFTConfig
from rl.workers.batching import (balanced_rank_rows, padded_cost, plan_micro_batches, plan_token_micro_batches,
                                 row_lengths, split_even)
from tests.rl.workers.hand import capture_step_grads

# ---------------------------------------------------------------------------- plans (no model)


def test_padded_plan_groups_similar_lengths_by_hand():
    prompt, response = [10, 10, 10, 10], [100, 5, 90, 6]
    # by length: row 0 (110), 2 (100), 3 (16), 1 (15). [0, 2] costs 2 x 110 = 220 <= 240, adding
    # row 3 would cost 3 x 110 = 330; [3, 1] costs 2 x 16 = 32.
    plan = plan_token_micro_batches([0, 1, 2, 3], prompt, response, 240, packed=False)
    assert [m.rows for m in plan] == [[0, 2], [3, 1]] and not any(m.padding for m in plan)
    # the fixed-size split of today pads the short rows to the long ones: 2 x 110 + 2 x 100 = 420 tokens
    fixed = plan_micro_batches([0, 1, 2, 3], 2)
    assert sum(padded_cost(m.rows, prompt, response) for m in fixed) == 420
    assert sum(padded_cost(m.rows, prompt, response) for m in plan) == 252
    # a row over the budget gets a micro-batch of its own
    assert [m.rows for m in plan_token_micro_batches([0, 1], prompt, response, 50, packed=False)] == [[0], [1]]


def test_packed_plan_fits_budget_and_covers_rows_once():
    rng = random.Random(0)
    for trial in range(50):
        n = rng.randint(1, 40)
        prompt = [rng.randint(1, 50) for _ in range(n)]
        response = [int(rng.lognormvariate(3, 1)) + 1 for _ in range(n)]
        budget = rng.randint(60, 600)
        rows = list(range(n))
        for packed in (False, True):
            plan = plan_token_micro_batches(rows, prompt, response, budget, packed=packed)
            assert sorted(i for m in plan for i in m.rows) == rows, trial
            for m in plan:
                cost = (sum(prompt[i] + response[i] for i in m.rows) if packed
                        else padded_cost(m.rows, prompt, response))
                assert len(m.rows) == 1 or cost <= budget, (trial, packed, m.rows, cost)
        # first-fit decreasing never needs more than twice the lower bound of micro-batches
        lengths = [p + r for p, r in zip(prompt, response)]
        packed_plan = plan_token_micro_batches(rows, prompt, response, budget, packed=True)
        if max(lengths) <= budget:
            assert len(packed_plan) <= 2 * math.ceil(sum(lengths) / budget)


def test_balanced_rank_rows_keep_mini_batches_and_even_out_tokens():
    rng = random.Random(1)
    for world, n, local_mini in ((2, 16, 4), (2, 12, 6), (4, 32, 3), (3, 9, 5)):
        lengths = [int(rng.lognormvariate(5, 1)) + 1 for _ in range(n)]
        per_rank = balanced_rank_rows(lengths, world, local_mini)
        shard = n // world
        chunks = split_even(list(range(shard)), math.ceil(shard / local_mini))
        assert all(len(rows) == shard for rows in per_rank)
        assert sorted(i for rows in per_rank for i in rows) == list(range(n))
        for j, chunk in enumerate(chunks):   # global mini-batch j holds the same sequences as the plain split
            start = sum(len(c) for c in chunks[:j])
            plain = {r * shard + i for r in range(world) for i in chunk}
            balanced = {i for rows in per_rank for i in rows[start:start + len(chunk)]}
            assert balanced == plain, (world, n, j)
        loads = [sum(lengths[i] for i in rows) for rows in per_rank]
        plain_loads = [sum(lengths[r * shard:(r + 1) * shard]) for r in range(world)]
        assert max(loads) - min(loads) <= max(plain_loads) - min(plain_loads) + max(lengths) // 10
    # by hand: one mini-batch, two ranks; the plain split gives 100 + 90 vs 2 + 1
    assert sorted(map(sorted, balanced_rank_rows([100, 90, 2, 1], 2, 2))) == [[0, 3], [1, 2]]


# ---------------------------------------------------------------------------- tiny Qwen2.5-VL


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory) -> Path:
    from tests.tiny_vl import build_scaled_tiny_vl

    return build_scaled_tiny_vl(tmp_path_factory.mktemp("packing") / "policy")


@pytest.fixture(scope="module")
def vl_data(vl_dir):
    """8 rows: random prompts (0-2 images) and random response lengths 1..24, with advantages and
    off-policy old / reference log-probs."""
    from rl.models.inputs import encode_for_training
    from rl.models.loading import load_policy, load_processor
    from rl.models.logprobs import policy_logprobs

    processor = load_processor(vl_dir)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    prompts = ["Find the red circle.", "Where is the blue square that moves left in the second frame?", "Say hi."]
    samples = [{"prompt": prompts[i % 3], "images": images[:i % 3]} for i in range(8)]
    lengths = [1, 24, 3, 17, 2, 9, 24, 5]
    responses = [[int(t) for t in rng.integers(40, 120, n)] for n in lengths]
    batch = encode_for_training(processor, samples, responses)
    assert batch.response_lengths.tolist() == lengths
    gen = torch.Generator().manual_seed(1)
    mask = batch.response_mask.float()
    with torch.no_grad():
        logp, _ = policy_logprobs(load_policy(vl_dir), batch)
    old = (logp + 0.3 * torch.randn(logp.shape, generator=gen)) * mask
    ref = (logp + 0.1 * torch.randn(logp.shape, generator=gen)) * mask
    adv = torch.randn(8, 1, generator=gen).expand_as(mask) * mask
    return batch, adv, old, ref


def test_packed_logprobs_and_grads_match_padded(vl_dir, vl_data):
    from dataclasses import replace

    from rl.models.loading import load_policy
    from rl.models.logprobs import packed_policy_logprobs, policy_logprobs

    batch = vl_data[0]
    mask = batch.response_mask.bool()
    results = {}
    for name, fn in (("padded", policy_logprobs), ("packed", packed_policy_logprobs)):
        model = load_policy(vl_dir)
        logp, ent = fn(model, batch, temperature=0.7, with_entropy=True)
        (logp * torch.linspace(-1, 1, logp.shape[1])).sum().backward()
        results[name] = (logp.detach(), ent.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                       if p.grad is not None})
    (lp_a, ent_a, grad_a), (lp_b, ent_b, grad_b) = results["padded"], results["packed"]
    assert lp_a[mask].std() > 0.5   # far from uniform: the comparison means something
    torch.testing.assert_close(lp_b, lp_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent_b, ent_a, rtol=1e-5, atol=1e-5)
    assert (lp_b[~mask] == 0).all()
    assert set(grad_a) == set(grad_b) and any("visual" in n for n in grad_a)
    for n, g in grad_a.items():
        torch.testing.assert_close(grad_b[n], g, rtol=1e-4, atol=1e-5, msg=lambda m: f"{n}: {m}")

    # negative control: text positions that do not restart per sequence let rows attend to each other
    packed = batch.packed()
    assert packed.num_tokens == int(batch.attention_mask.sum())
    flat = replace(packed, position_ids=torch.cat([torch.arange(packed.num_tokens)[None, None],
                                                   packed.position_ids[1:]], 0))
    with torch.no_grad():
        out = load_policy(vl_dir)(**flat.model_inputs(), use_cache=False, logits_to_keep=flat.logit_index)
        wrong = torch.log_softmax(out.logits[0].float() / 0.7, -1).gather(-1, flat.targets[:, None])[:, 0]
    assert (wrong - lp_a[packed.target_rows, packed.target_cols]).abs().max() > 1e-2


def _worker(vl_dir, budget: int, packing: str, micro: int = 2, role: str = "actor"):
    from rl.workers.policy import PolicyWorker

    cfg = ActorConfig(ppo_mini_batch_size=4, ppo_micro_batch_size_per_worker=micro, kl_loss_coef=0.01,
                      entropy_coeff=1e-3, max_tokens_per_micro_batch=budget, packing=packing,
                      optim=OptimConfig(lr=1e-4, weight_decay=0.01, grad_clip=1.0))
    sft = SFTConfig(lr=1e-3, micro_batch_size_per_worker=micro, max_tokens_per_micro_batch=budget, warmup_ratio=0.0)
    return PolicyWorker(str(vl_dir), ModelConfig(), cfg, role=role, sft_cfg=sft if role == "sft" else None,
                        total_steps=2)


# (budget, packing): today's fixed-size micro-batches, token budget padded, token budget packed
MODES = [(0, "auto"), (300, "padded"), (300, "packed")]


def test_update_and_log_probs_identical_across_micro_batch_modes(vl_dir, vl_data):
    batch, adv, old, ref = vl_data
    prompt, response = row_lengths(batch)
    # the budget regroups rows across the fixed-size boundaries: the comparison is not trivial
    plan = plan_token_micro_batches(list(range(4)), prompt, response, 300, packed=False)
    assert [m.rows for m in plan] != [[0, 1], [2, 3]] and len(plan) >= 2
    results = {}
    for budget, packing in MODES:
        worker = _worker(vl_dir, budget, packing)
        assert worker.packs_rows == (packing == "packed")
        grads = capture_step_grads(worker)
        logp = worker.compute_log_prob(batch)
        metrics = worker.update_policy(batch, adv, old, ref, global_num_tokens=int(batch.response_mask.sum()))
        assert len(grads) == 2   # ppo_mini_batch_size 4 of 8 rows: two optimizer steps
        results[packing] = (logp, grads, metrics)
    base_logp, base_grads, base_metrics = results["auto"]
    for packing in ("padded", "packed"):
        logp, grads, metrics = results[packing]
        torch.testing.assert_close(logp, base_logp, rtol=1e-5, atol=1e-5)
        for step, (got, want) in enumerate(zip(grads, base_grads)):
            assert set(got) == set(want)
            for n, g in want.items():
                torch.testing.assert_close(got[n], g, rtol=1e-4, atol=1e-5, msg=lambda m: f"{packing} {step} {n}: {m}")
        for key, value in base_metrics.items():
            assert metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (packing, key)


def test_sft_step_identical_with_token_budget(vl_dir, vl_data):
    batch = vl_data[0]
    losses = {}
    for budget, packing in MODES:
        worker = _worker(vl_dir, budget, packing, role="sft")
        grads = capture_step_grads(worker)
        losses[packing] = (worker.sft_step(batch)["sft/loss"], grads[0])
    for packing in ("padded", "packed"):
        assert losses[packing][0] == pytest.approx(losses["auto"][0], rel=1e-5)
        for n, g in losses["auto"][1].items():
            torch.testing.assert_close(losses[packing][1][n], g, rtol=1e-4, atol=1e-5)


def test_group_balanced_order_shards_like_balanced_rank_rows():
    from rl.workers.policy_group import PolicyGroup
    from tests.rl.workers.text_lm import make_batch

    batch = make_batch(8, prompt_len=4, response_len=12, seed=5)
    group = object.__new__(PolicyGroup)
    group.name, group.workers = "actor", [None, None]
    group.worker_kwargs = {"actor_cfg": ActorConfig(ppo_mini_batch_size=2, max_tokens_per_micro_batch=64),
                           "rollout_n": 2}
    order = group.balanced_order(batch)
    prompt, response = row_lengths(batch)
    per_rank = balanced_rank_rows([p + r for p, r in zip(prompt, response)], 2, 2)
    assert order == per_rank[0] + per_rank[1]
    group.worker_kwargs["actor_cfg"] = ActorConfig()   # default: no budget, the plain split
    assert group.balanced_order(batch) is None


def test_log_prob_pass_balances_the_ranks_tokens_and_returns_rows_in_batch_order():
    from rl.workers.policy_group import PendingLogProbs, PolicyGroup
    from tests.rl.workers.text_lm import make_batch

    batch = make_batch(8, prompt_len=4, response_len=12, seed=5)
    group = object.__new__(PolicyGroup)
    group.name, group.workers = "reference", [None, None]
    group.worker_kwargs = {"actor_cfg": ActorConfig(ppo_mini_batch_size=2, max_tokens_per_micro_batch=64)}
    shards, order = group.split_for_log_probs(batch)
    assert sorted(order) == list(range(8)) and [len(s) for s in shards] == [4, 4]
    prompt, response = row_lengths(batch)
    tokens = [p + r for p, r in zip(prompt, response)]
    # one partition of the whole batch (no mini-batches in a forward pass), never worse than the plain split
    assert order == [i for rows in balanced_rank_rows(tokens, 2, 4) for i in rows]
    rank_sums = [sum(tokens[i] for i in order[:4]), sum(tokens[i] for i in order[4:])]
    assert abs(rank_sums[0] - rank_sums[1]) < abs(sum(tokens[:4]) - sum(tokens[4:]))   # this draw: 0 < 10
    assert sum(rank_sums) == sum(tokens)

    class Echo:   # "log-probs" that name their row: each shard row's response tokens
        @staticmethod
        def collect_log_probs(futures):
            return torch.cat([s.responses.float() for s in futures]), 0.5

    values, busy = PendingLogProbs(Echo(), shards, order).collect()
    torch.testing.assert_close(values, batch.responses.float())
    assert busy == 0.5
    group.worker_kwargs["actor_cfg"] = ActorConfig()   # no budget: the plain split, batch order
    shards, order = group.split_for_log_probs(batch)
    assert order is None and torch.equal(shards[1].responses, batch.responses[4:])


# ---------------------------------------------------------------------------- 2 gloo ranks


def _text_cfg(budget: int) -> ActorConfig:
    return ActorConfig(ppo_mini_batch_size=16, ppo_micro_batch_size_per_worker=2, kl_loss_coef=0.01,
                       entropy_coeff=1e-3, max_tokens_per_micro_batch=budget,
                       optim=OptimConfig(lr=1e-3, weight_decay=0.01, grad_clip=1.0))


def _rank_update(model_dir: str, out_dir: str, rank: int, world_size: int, port, shard: list[int], budget: int):
    from rl.workers.policy import PolicyWorker
    from tests.rl.workers.dist_helpers import global_data
    from tests.rl.workers.text_lm import TEXT_HOOKS

    batch, adv, old, ref = global_data(model_dir)
    worker = PolicyWorker(model_dir, ModelConfig(), _text_cfg(budget), rank, world_size, "127.0.0.1", port,
                          hooks=TEXT_HOOKS, total_steps=2)
    local = batch.select(shard)
    grads = capture_step_grads(worker)
    logp = worker.compute_log_prob(local)
    metrics = worker.update_policy(local, adv[shard], old[shard], ref[shard],
                                   global_num_tokens=int(batch.response_mask.sum()), global_num_seqs=len(batch))
    torch.save({"logp": logp, "grads": grads, "metrics": metrics}, Path(out_dir) / f"rank{rank}.pt")


def _spawned(rank: int, world_size: int, port: int, model_dir: str, out_dir: str, shards, budget: int) -> None:
    torch.set_num_threads(1)
    try:
        _rank_update(model_dir, out_dir, rank, world_size, port, shards[rank], budget)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_token_budget_match_one_rank_fixed(tmp_path):
    """Uneven shards (3 and 5 rows) under a token budget that gives the ranks different micro-batch
    counts: the global token mean over micro-batches and ranks equals one rank's fixed-size update."""
    from rl.workers.fsdp import free_port
    from tests.rl.workers.dist_helpers import GLOBAL_BATCH, SHARDS, global_data, spawn_ranks
    from tests.rl.workers.text_lm import build_text_model

    model_dir = str(build_text_model(tmp_path / "model", seed=0))
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    batch = global_data(model_dir)[0]
    prompt, response = row_lengths(batch)
    counts = [len(plan_token_micro_batches(s, prompt, response, 20, packed=False)) for s in SHARDS]
    assert counts[0] != counts[1]   # rank 0 runs padding passes
    spawn_ranks(_spawned, 2, args=(2, free_port(), model_dir, str(two), SHARDS, 20))
    _rank_update(model_dir, str(one), 0, 1, None, list(range(GLOBAL_BATCH)), 0)
    ranks = [torch.load(two / f"rank{r}.pt") for r in range(2)]
    single = torch.load(one / "rank0.pt")
    torch.testing.assert_close(torch.cat([ranks[0]["logp"], ranks[1]["logp"]]), single["logp"], rtol=1e-5, atol=1e-6)
    for got in (ranks[0]["grads"][0], ranks[1]["grads"][0]):
        for n, g in single["grads"][0].items():
            torch.testing.assert_close(got[n], g, rtol=1e-4, atol=1e-5, msg=lambda m: f"{n}: {m}")
    for key, value in single["metrics"].items():
        assert ranks[0]["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
