"""GRPOTrainer.train_step with fake worker groups (no Ray, no model): the phases run in order on one
GRPOBatch, scoring and log-probs overlap as the driver promises, the advantages are GRPO's on the
fake rewards, the metrics are the hand-computed ones, overriding one phase changes only that phase's
output, and fit decides from the phase reached whether a failed step can be rewound."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import rl.driver
from rl.batch import Phase
from rl.config import load_config
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.models.encoded_batch import EncodedBatch
from rl.rollout.base import GeneratedResponse, RolloutOutput
from rl.tracking import Tracker

N = 3                       # responses per prompt
PROMPT_TOKENS = 2           # every fake prompt is 2 tokens long
# Score of response k of each prompt; response k has k + 1 tokens (token id 10 + k), and the
# last response of each prompt hit the length limit.
SCORES = {"a": [0.0, 1.0, 2.0], "b": [1.0, 1.0, 1.0], "c": [0.0, 0.0, 3.0], "d": [2.0, 2.0, 2.0]}
RECORDS = [{"id": i, "query": f"q-{i}", "ground_truth": {}} for i in SCORES]
BATCH = RECORDS[:2]         # a training batch of 2 prompts is "a" and "b" (in the loader's order)
EPS = 1e-6                  # GRPO: (score - group mean) / (unbiased group std + 1e-6)


def _fake_encode(processor, samples, response_ids) -> EncodedBatch:
    """The model tensors of ``response_ids``: 2 prompt columns, responses right-padded with 0."""
    rows, width = len(response_ids), max(len(r) for r in response_ids)
    responses = torch.zeros(rows, width, dtype=torch.long)
    mask = torch.zeros(rows, width, dtype=torch.long)
    for i, ids in enumerate(response_ids):
        responses[i, :len(ids)] = torch.tensor(ids)
        mask[i, :len(ids)] = 1
    prompt = torch.ones(rows, PROMPT_TOKENS, dtype=torch.long)
    return EncodedBatch(
        input_ids=torch.cat([prompt, responses], 1), attention_mask=torch.cat([prompt, mask], 1),
        position_ids=torch.zeros(3, rows, PROMPT_TOKENS + width, dtype=torch.long),
        mm_token_type_ids=torch.zeros(rows, PROMPT_TOKENS + width, dtype=torch.long),
        responses=responses, response_mask=mask, pixel_values=[None] * rows, image_grid_thw=[None] * rows,
        pad_token_id=0)


def _fake_log_probs(encoded: EncodedBatch) -> torch.Tensor:
    """What the fake policy computes: -token_id / 10 on response tokens, 0 on padding."""
    return -encoded.responses.float() / 10 * encoded.response_mask


class _Rollout:
    """Streams one piece per prompt to ``on_groups``; gen busy 0.5 s per call."""

    workers = ["engine-0"]

    def __init__(self, events: list[str]):
        self.events = events

    def generate(self, records, sampling, on_groups=None):
        self.events.append("generate")
        pieces = []
        for i, record in enumerate(records):
            responses = [GeneratedResponse(0, [10 + k] * (k + 1), [-0.5] * (k + 1), f"{record['id']}/{k}",
                                           "length" if k == N - 1 else "stop") for k in range(N)]
            piece = RolloutOutput([[1] * PROMPT_TOKENS], responses, n=N)
            if on_groups is not None:
                on_groups(i, piece)
            pieces.append(piece)
        return pieces, 0.5

    def sleep(self) -> None:
        self.events.append("sleep")

    def sampling_state(self) -> dict:
        return {"calls": [0]}


class _Reward:
    """Scores "<id>/<k>" with SCORES[id][k] (component accuracy = score / 2); 0.3 busy s per group."""

    workers = ["scorer-0", "scorer-1"]

    def __init__(self, events: list[str]):
        self.events = events

    def submit(self, groups, pending=None, first_index=0):
        pending = pending or SimpleNamespace(groups={}, failures=0, restarts=0, busy_s=0.0)
        for offset, (responses, _, _) in enumerate(groups):
            self.events.append(f"score {first_index + offset}")
            pending.groups[first_index + offset] = responses
        return pending

    def collect(self, pending):
        self.events.append("collect rewards")
        out = []
        for index in sorted(pending.groups):
            scores = [SCORES[text.split("/")[0]][int(text.split("/")[1])] for text in pending.groups[index]]
            out.append([{"score": s, "accuracy": s / 2} for s in scores])
            pending.busy_s += 0.3
        return out


class _Policy:
    """Two fake ranks: log-probs from :func:`_fake_log_probs` per shard, an update that records its inputs."""

    world_size = 2

    def __init__(self, events: list[str], fail_update: bool = False):
        self.events = events
        self.fail_update = fail_update
        self.updates: list[dict] = []
        self.saved: list[str] = []

    def shard(self, items):
        return list(items.split(len(items) // self.world_size))

    def split_for_log_probs(self, encoded):
        return self.shard(encoded), None

    def compute_log_prob_async(self, shards):
        self.events.append("start log-probs")
        return list(shards)

    def collect_log_probs(self, futures):
        self.events.append("collect log-probs")
        return torch.cat([_fake_log_probs(s) for s in futures]), 0.25

    def update_policy(self, encoded, advantages, old_log_probs, ref_log_probs):
        self.events.append("update")
        if self.fail_update:
            raise RuntimeError("an actor rank died during the update")
        self.updates.append({"encoded": encoded, "advantages": advantages, "old": old_log_probs, "ref": ref_log_probs})
        return {"actor/pg_loss": 0.5, "actor/lr": 1e-3}

    def push_weights(self, targets, bucket_mb, checkpoint_names=True):
        self.events.append("push weights")
        assert targets == ["engine-0"]
        return 3 * 2**20, 0.1

    def save_checkpoint(self, path: str) -> None:
        self.saved.append(path)
        Path(path).mkdir(parents=True)


PHASES = ["_generate", "_encode", "_start_log_probs", "_score", "_compute_log_probs", "_compute_advantages",
          "_update_actor", "_sync_weights"]


class _Trainer(GRPOTrainer):
    """The real driver on fake groups; records every phase call (``__getattribute__`` wraps the
    phase methods, a subclass's overrides included) and the phase the batch reached after it."""

    def __init__(self, cfg, records=BATCH, fail_update: bool = False):
        super().__init__(cfg, model_path="unused", train_records=list(records))
        self.events: list[str] = []
        self.groups = Groups(actor=_Policy(self.events, fail_update), rollout=_Rollout(self.events),
                             reward=_Reward(self.events))
        self.tracker = Tracker(self.run_dir, cfg.tracking, {}, default_name="t")
        self.sampling = None
        self.phases: list[tuple[str, Phase]] = []

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in PHASES:
            def traced(batch):
                self.events.append(name)
                out = attr(batch)
                self.phases.append((name, out.phase))
                return out
            return traced
        return attr


def _cfg(run_dir: Path, *extra: str):
    return load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", "trainer.train_batch_size=2",
                        f"rollout.n={N}", "actor.ppo_mini_batch_size=2", "trainer.total_steps=2",
                        "trainer.save_freq=0", "trainer.val_freq=0", "eval.freq=0", "trainer.log_samples_freq=0",
                        "trainer.export_hf=false", "tracking.wandb_mode=disabled", *extra])


@pytest.fixture(autouse=True)
def no_ray_no_processor(monkeypatch):
    monkeypatch.setattr(rl.driver, "_put", lambda value: value)
    monkeypatch.setattr("rl.models.inputs.encode_for_training", _fake_encode)


def _grpo(scores: list[float]) -> list[float]:
    """Hand GRPO advantage per response: (s - mean) / (unbiased std + 1e-6)."""
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
    return [(s - mean) / (std + EPS) for s in scores]


def _expected_advantages(ids: list[str]) -> torch.Tensor:
    """(N, R=3) token-level advantages: each response's advantage on its k + 1 tokens."""
    rows = []
    for i in ids:
        for k, adv in enumerate(_grpo(SCORES[i])):
            rows.append([adv] * (k + 1) + [0.0] * (N - 1 - k))
    return torch.tensor(rows)


def test_phases_run_in_order_on_one_batch_and_overlap_scoring_with_log_probs(tmp_path):
    trainer = _Trainer(_cfg(tmp_path))
    trainer.global_step = 1
    trainer.train_step()
    assert trainer.phases == [("_generate", Phase.GENERATED), ("_encode", Phase.ENCODED),
                              ("_start_log_probs", Phase.ENCODED), ("_score", Phase.SCORED),
                              ("_compute_log_probs", Phase.LOG_PROBS), ("_compute_advantages", Phase.ADVANTAGES),
                              ("_update_actor", Phase.UPDATED), ("_sync_weights", Phase.SYNCED)]
    # Each group goes to the reward pool while generation streams; the log-probs start before the
    # driver waits for the rewards.
    assert trainer.events == [
        "_generate", "generate", "score 0", "score 1", "_encode", "_start_log_probs", "start log-probs",
        "_score", "collect rewards", "_compute_log_probs", "collect log-probs", "_compute_advantages",
        "_update_actor", "update", "_sync_weights", "push weights"]
    batch = trainer.batch
    assert batch.step == 1 and batch.phase is Phase.SYNCED and batch.pending_rewards is None
    assert not batch.log_prob_futures
    assert len(batch.records) == 2 and batch.rollout.scores.tolist() == [s for r in batch.records
                                                                          for s in SCORES[r["id"]]]


def test_advantages_and_metrics_match_hand_computed_values(tmp_path):
    trainer = _Trainer(_cfg(tmp_path))
    trainer.global_step = 1
    metrics = trainer.train_step()
    batch = trainer.batch
    ids = [r["id"] for r in batch.records]
    expected_adv = _expected_advantages(ids)
    torch.testing.assert_close(batch.advantages, expected_adv)
    # The update gets the whole batch: the advantages, and the old log-probs joined from both ranks' shards.
    (update,) = trainer.groups.actor.updates
    assert update["encoded"] is batch.encoded and update["ref"] is None
    torch.testing.assert_close(update["advantages"], expected_adv)
    torch.testing.assert_close(update["old"], _fake_log_probs(batch.encoded))

    scores = [s for i in ids for s in SCORES[i]]
    valid_adv = [a for i in ids for k, a in enumerate(_grpo(SCORES[i])) for _ in range(k + 1)]
    lengths = [k + 1 for _ in ids for k in range(N)]
    tokens = sum(lengths) + PROMPT_TOKENS * len(lengths)
    constant = sum(len(set(SCORES[i])) == 1 for i in ids) / len(ids)
    expected = {
        "training/global_step": 1, "training/epoch": trainer.loader.state.epoch,
        "critic/score/mean": sum(scores) / 6, "critic/score/max": max(scores), "critic/score/min": min(scores),
        "critic/rewards/mean": sum(scores) / 6,
        "critic/advantages/mean": sum(valid_adv) / len(valid_adv),
        "critic/advantages/max": max(valid_adv), "critic/advantages/min": min(valid_adv),
        "response_length/mean": 2.0, "response_length/max": 3.0, "response_length/min": 1.0,
        "prompt_length/mean": 2.0, "response_length/clip_ratio": 1 / 3,
        "reward/accuracy": sum(scores) / 12, "reward/failed": 0.0, "reward/worker_restarts": 0.0,
        "diversity/distinct_responses_per_group": 3.0, "diversity/zero_variance_group_frac": constant,
        "critic/solve_none_or_all": constant,
        "actor/pg_loss": 0.5, "actor/lr": 1e-3,
        "timing_busy_s/gen": 0.5, "timing_busy_s/reward": 0.3 * 2 / 2, "timing_busy_s/old_log_prob": 0.25,
        "perf/total_num_tokens": tokens, "perf/weight_sync_mb": 3.0,
    }
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key
    assert {k for k in metrics if k.startswith("timing_s/")} == {
        f"timing_s/{p}" for p in ("gen", "encode", "reward", "old_log_prob", "adv", "update_actor",
                                  "update_weights", "step")}
    assert metrics["perf/throughput"] == pytest.approx(tokens / metrics["timing_s/step"] / 2)
    assert not any(k.startswith(("batch/", "timing_busy_s/ref")) for k in metrics)


class _ConstantAdvantages(_Trainer):
    def _compute_advantages(self, batch):
        batch.advantages = 0.25 * batch.encoded.response_mask.float()
        return batch.advance(Phase.ADVANTAGES)


def _comparable(metrics: dict) -> dict:
    """The metrics that do not depend on wall-clock time."""
    return {k: v for k, v in metrics.items() if not k.startswith(("timing_s/", "perf/time_per_step",
                                                                  "perf/throughput"))}


def test_overriding_one_phase_changes_only_its_output(tmp_path):
    base = _Trainer(_cfg(tmp_path / "base"))
    custom = _ConstantAdvantages(_cfg(tmp_path / "custom"))
    runs = []
    for trainer in (base, custom):
        trainer.global_step = 1
        runs.append(_comparable(trainer.train_step()))
    assert [r["id"] for r in base.batch.records] == [r["id"] for r in custom.batch.records]
    (base_update,), (custom_update,) = base.groups.actor.updates, custom.groups.actor.updates
    torch.testing.assert_close(custom_update["advantages"], 0.25 * custom.batch.encoded.response_mask.float())
    assert not torch.equal(base_update["advantages"], custom_update["advantages"])
    torch.testing.assert_close(custom_update["old"], base_update["old"])
    assert torch.equal(custom.batch.encoded.input_ids, base.batch.encoded.input_ids)
    assert custom.events == base.events and custom.phases == base.phases
    changed = {k for k in runs[0] if runs[0][k] != runs[1][k]}
    assert changed == {"critic/advantages/mean", "critic/advantages/max", "critic/advantages/min"}
    assert runs[1]["critic/advantages/mean"] == runs[1]["critic/advantages/min"] == pytest.approx(0.25)


def test_dynamic_sampling_trains_on_the_kept_groups_already_scored(tmp_path):
    # Rounds of 2 prompts until 2 groups are kept: "b" and "d" are constant and dropped.
    cfg = _cfg(tmp_path, "algorithm.filter_groups.enable=true", "algorithm.filter_groups.max_num_gen_batches=0")
    trainer = _Trainer(cfg, records=RECORDS)
    trainer.global_step = 1
    metrics = trainer.train_step()
    kept = [r["id"] for r in trainer.batch.records]
    assert sorted(kept) == ["a", "c"]
    torch.testing.assert_close(trainer.batch.advantages, _expected_advantages(kept))
    # The rewards came with generation: _score does not wait again, the rest runs as usual.
    assert trainer.events.count("collect rewards") == metrics["batch/num_gen_batches"]
    assert [name for name, _ in trainer.phases] == PHASES[1:]
    assert trainer.phases[0] == ("_encode", Phase.ENCODED) and trainer.phases[2] == ("_score", Phase.SCORED)
    assert metrics["batch/kept_groups"] == 2.0 and metrics["diversity/zero_variance_group_frac"] == 0.0


def test_a_step_with_no_kept_group_stops_before_encoding(tmp_path):
    cfg = _cfg(tmp_path, "algorithm.filter_groups.enable=true", "algorithm.filter_groups.max_num_gen_batches=1")
    trainer = _Trainer(cfg, records=[r for r in RECORDS if r["id"] in ("b", "d")])
    trainer.global_step = 1
    metrics = trainer.train_step()
    assert trainer.batch.phase is Phase.DRAWN and trainer.batch.rollout is None and trainer.phases == []
    assert "update" not in trainer.events and "push weights" not in trainer.events
    assert metrics["batch/trained_groups"] == 0.0 and metrics["reward/failed"] == 0.0
    assert metrics["critic/score_all/mean"] == pytest.approx(1.5)       # (1 + 1 + 1 + 2 + 2 + 2) / 6
    assert not any(k.startswith(("perf/", "actor/", "critic/score/")) for k in metrics)


def test_phases_only_move_forward(tmp_path):
    trainer = _Trainer(_cfg(tmp_path))
    trainer.global_step = 1
    trainer.train_step()
    with pytest.raises(ValueError, match="from phase SYNCED to SCORED"):
        trainer.batch.advance(Phase.SCORED)


@pytest.mark.parametrize("fail_update", [False, True])
def test_fit_rewinds_a_failed_step_only_before_the_update(tmp_path, caplog, fail_update):
    class _Failing(_Trainer):
        """Step 2 fails in the actor update, or (fail_update False) while collecting log-probs."""

        def _compute_log_probs(self, batch):
            if self.global_step == 2 and not fail_update:
                raise RuntimeError("a policy worker died")
            return super()._compute_log_probs(batch)

        def _update_actor(self, batch):
            self.groups.actor.fail_update = self.global_step == 2 and fail_update
            return super()._update_actor(batch)

    trainer = _Failing(_cfg(tmp_path))
    with caplog.at_level("ERROR", logger="rl.driver"), pytest.raises(RuntimeError, match="died"):
        trainer.fit()
    if fail_update:
        assert trainer.batch.phase is Phase.UPDATING
        assert "step 2 failed during the actor update" in caplog.text and trainer.ckpt.complete_steps() == []
    else:
        assert trainer.batch.phase is Phase.SCORED
        assert "saved the completed step 1" in caplog.text and trainer.ckpt.complete_steps() == [1]
