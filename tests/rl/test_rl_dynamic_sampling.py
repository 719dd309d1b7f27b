"""Dynamic sampling (algorithm.filter_groups): the group filter and accumulator on hand-computed
cases, RolloutBatch.select_groups / concat_batches, and the driver's generation rounds with a
scripted generate-and-score (no Ray): batches drawn, batches.jsonl, skipped steps, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rl.batch import RolloutBatch, concat_batches
from rl.config import ConfigError, load_config
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.dynamic_sampling import GroupAccumulator, group_multiple, metric_values, select_groups
from rl.prompt_loader import PromptLoader
from rl.tracking import Tracker


def _batch(ids: list[str], scores: list[list[float]], accuracy: list[list[float]] | None = None,
           failures: int = 0) -> RolloutBatch:
    """A scored batch: one group per id, ``scores[g]`` its n scores (accuracy = score / 2 unless given)."""
    n = len(scores[0])
    records = [{"id": i, "query": f"q-{i}"} for i in ids]
    rows = len(ids) * n
    batch = RolloutBatch(records, n, [g for g in range(len(ids)) for _ in range(n)],
                         [[g, k] for g in range(len(ids)) for k in range(n)],
                         [f"{i}/{k}" for i in ids for k in range(n)],
                         [[-0.5, -0.25]] * rows, ["stop"] * rows)
    acc = accuracy or [[s / 2 for s in group] for group in scores]
    batch.set_rewards([[{"score": s, "accuracy": a} for s, a in zip(gs, ga)] for gs, ga in zip(scores, acc)],
                      failed=failures)
    return batch


# ------------------------------------------------------------------ the filter


def test_select_groups_drops_constant_groups_and_groups_outside_the_bounds():
    values = [1, 1, 1,          # constant -> zero variance
              0, 1, 2,          # mean 1.0 -> kept
              3, 4, 5,          # mean 4.0 > high=3 -> out of bounds
              0, 0, 1,          # mean 1/3 < low=0.5 -> out of bounds
              0.1, 0.1, 0.1,    # constant (np.std of these is 1.4e-17, not 0)
              0.5, 0.5, 0.75]   # mean 0.5833 -> kept
    sel = select_groups(values, 3, low=0.5, high=3.0)
    assert (sel.kept, sel.zero_variance, sel.out_of_bounds) == ([1, 5], [0, 4], [2, 3])
    assert sel.num_groups == 6
    # no bounds: only the constant groups go
    sel = select_groups(values, 3)
    assert (sel.kept, sel.zero_variance, sel.out_of_bounds) == ([1, 2, 3, 5], [0, 4], [])
    # a bound is inclusive; a constant group outside the bounds counts as zero variance
    sel = select_groups([2, 2, 0, 4], 2, low=2.0, high=2.0)
    assert (sel.kept, sel.zero_variance, sel.out_of_bounds) == ([1], [0], [])
    sel = select_groups([9, 9, float("nan"), 1], 2, high=5.0)
    assert (sel.kept, sel.zero_variance, sel.out_of_bounds) == ([], [0], [1])
    with pytest.raises(ValueError, match="n=3"):
        select_groups([1, 2, 3, 4], 3)


def test_metric_is_the_score_or_a_component():
    batch = _batch(["a", "b"], [[1.0, 3.0], [2.0, 2.0]], accuracy=[[1.0, 1.0], [0.0, 1.0]])
    assert metric_values(batch, "score").tolist() == [1.0, 3.0, 2.0, 2.0]
    # on the accuracy component the verdicts swap: "a" is constant, "b" varies
    assert select_groups(metric_values(batch, "score"), 2).kept == [0]
    assert select_groups(metric_values(batch, "accuracy"), 2).kept == [1]
    with pytest.raises(ConfigError, match=r"algorithm\.filter_groups\.metric.*'iou'.*\['score', 'accuracy'\]"):
        metric_values(batch, "iou")
    failed = _batch(["c"], [[0.0, 0.0]])
    failed.components, failed.reward_failures = {"reward_failed": np.ones(2)}, 1   # every group failed to score
    assert metric_values(failed, "accuracy").tolist() == [0.0, 0.0]


def test_metric_is_checked_against_the_reward_components_at_start_up():
    base = ["algorithm.filter_groups.enable=true"]
    assert load_config(base + ["algorithm.filter_groups.metric=accuracy"]).algorithm.filter_groups.metric == "accuracy"
    with pytest.raises(ConfigError, match=r"algorithm\.filter_groups\.metric.*'accurcy'.*non_repeat"):
        load_config(base + ["algorithm.filter_groups.metric=accurcy"])
    cfg = load_config(["reward.name=videoseg_r1", "algorithm.filter_groups.metric=length_scale"] + base)
    assert cfg.algorithm.filter_groups.metric == "length_scale"          # the multiplier is a component too
    bounds = load_config(["algorithm.filter_groups.low=0.5", "algorithm.filter_groups.high=null"]).algorithm
    assert (bounds.filter_groups.low, bounds.filter_groups.high) == (0.5, None)
    with pytest.raises(ConfigError, match=r"algorithm\.filter_groups\.low"):
        load_config(["algorithm.filter_groups.low=2", "algorithm.filter_groups.high=1"])
    with pytest.raises(ConfigError, match=r"algorithm\.filter_groups\.max_num_gen_batches"):
        load_config(["algorithm.filter_groups.max_num_gen_batches=-1"])


def test_group_multiple_gives_equal_rank_shards():
    assert group_multiple(8, [2, 1]) == 1
    assert group_multiple(3, [2]) == 2
    assert group_multiple(2, [4, 1]) == 2
    assert group_multiple(6, [4, 3]) == 2        # lcm 12; 2 groups x 6 = 12 sequences
    assert group_multiple(5, []) == 1


# ------------------------------------------------------------- batch helpers


def test_select_groups_and_concat_keep_responses_scores_and_components_together():
    first = _batch(["a", "b", "c"], [[1.0, 2.0], [3.0, 3.0], [0.0, 4.0]])
    second = _batch(["d"], [[5.0, 6.0]], failures=1)
    second.components["reward_failed"] = np.array([0.0, 1.0])
    picked = first.select_groups([2, 0])
    assert [r["id"] for r in picked.records] == ["c", "a"] and picked.group_index == [0, 0, 1, 1]
    assert picked.response_texts == ["c/0", "c/1", "a/0", "a/1"]
    assert picked.response_ids == [[2, 0], [2, 1], [0, 0], [0, 1]]
    assert picked.scores.tolist() == [0.0, 4.0, 1.0, 2.0] and picked.components["accuracy"].tolist() == [0, 2, 0.5, 1]
    joined = concat_batches([picked, second])
    assert [r["id"] for r in joined.records] == ["c", "a", "d"] and joined.group_index == [0, 0, 1, 1, 2, 2]
    assert joined.scores.tolist() == [0.0, 4.0, 1.0, 2.0, 5.0, 6.0] and len(joined) == 6
    assert joined.components["reward_failed"].tolist() == [0, 0, 0, 0, 0, 1]    # missing in the first: 0
    assert joined.reward_failures == 1 and joined.finish_reasons == ["stop"] * 6
    with pytest.raises(IndexError):
        first.select_groups([3])
    with pytest.raises(ValueError, match="different n"):
        concat_batches([first, _batch(["e"], [[1.0, 2.0, 3.0]])])


# --------------------------------------------------------------- accumulator


def test_accumulator_collects_rounds_and_cuts_the_surplus():
    acc = GroupAccumulator(target_groups=3, max_rounds=4)
    assert acc.wants_more()
    acc.add(_batch(["a", "b", "c"], [[1, 1], [0, 2], [5, 5]]))            # kept: b
    assert acc.wants_more() and acc.num_kept == 1
    acc.add(_batch(["d", "e", "f"], [[0, 1], [2, 2], [1, 0]]))            # kept: d, f
    assert not acc.wants_more()
    batch = acc.kept_batch()
    assert [r["id"] for r in batch.records] == ["b", "d", "f"] and batch.scores.tolist() == [0, 2, 0, 1, 1, 0]
    assert acc.record_ids() == ["a", "b", "c", "d", "e", "f"]
    assert acc.metrics() == {
        "batch/num_gen_batches": 2.0, "batch/generated_groups": 6.0, "batch/kept_groups": 3.0,
        "batch/dropped_groups": 3.0, "batch/dropped_zero_variance": 3.0, "batch/dropped_out_of_bounds": 0.0,
        "batch/trained_groups": 3.0, "batch/underfilled": 0.0, "critic/score_all/mean": 20 / 12,
    }
    # truncation: a round that keeps more than needed gives only the first groups
    acc = GroupAccumulator(target_groups=2, max_rounds=0, low=0.0, high=2.0)
    acc.add(_batch(["a", "b", "c", "d"], [[0, 1], [3, 4], [1, 2], [0, 2]]))   # b out of bounds; a, c, d kept
    assert not acc.wants_more() and acc.num_kept == 3
    assert [r["id"] for r in acc.kept_batch().records] == ["a", "c"]
    assert acc.metrics()["batch/dropped_out_of_bounds"] == 1.0 and acc.metrics()["batch/trained_groups"] == 2.0


def test_accumulator_stops_at_the_round_limit_underfilled_or_empty():
    acc = GroupAccumulator(target_groups=4, max_rounds=2, metric="accuracy")
    acc.add(_batch(["a", "b"], [[1, 2], [3, 3]]))                          # kept: a
    acc.add(_batch(["c", "d"], [[1, 2], [4, 6]], failures=1))              # kept: c, d
    assert not acc.wants_more() and acc.num_kept == 3
    assert acc.num_trained() == 3 and acc.num_trained(multiple=2) == 2
    batch = acc.kept_batch(multiple=2)
    assert [r["id"] for r in batch.records] == ["a", "c"] and batch.reward_failures == 1   # failures of every round
    metrics = acc.metrics(multiple=2)
    counts = (metrics["batch/underfilled"], metrics["batch/kept_groups"], metrics["batch/trained_groups"])
    assert counts == (1.0, 3.0, 2.0)
    empty = GroupAccumulator(target_groups=2, max_rounds=1)
    empty.add(_batch(["a", "b"], [[1, 1], [0, 0]]))
    assert not empty.wants_more() and empty.kept_batch() is None
    assert empty.metrics()["batch/underfilled"] == 1.0 and empty.metrics()["batch/dropped_zero_variance"] == 2.0
    assert [r["id"] for r in empty.all_generated().records] == ["a", "b"]
    unlimited = GroupAccumulator(target_groups=1, max_rounds=0)
    for _ in range(10):
        unlimited.add(_batch(["x"], [[1, 1]]))
    assert unlimited.wants_more()


# -------------------------------------------------------- driver, no Ray


RECORDS = [{"id": f"r{i}"} for i in range(10)]


class _Actor:
    world_size = 2

    def __init__(self):
        self.calls: list[str] = []

    def save_checkpoint(self, path: str) -> None:
        self.calls.append("save_checkpoint")
        Path(path).mkdir(parents=True)

    def load_checkpoint(self, path: str) -> None:
        assert Path(path).is_dir()


class _FilteringTrainer(GRPOTrainer):
    """Generation is scripted: a prompt's n=2 scores are [0, 1] when its id is in ``signal``,
    else constant; step ``fail_at`` fails in its second generation round."""

    def __init__(self, cfg, signal=(), fail_at=None):
        super().__init__(cfg, model_path="unused", train_records=RECORDS)
        self.signal, self.fail_at = set(signal), fail_at
        self.groups = Groups(actor=_Actor(), rollout=None, reward=None)
        self.tracker = Tracker(self.run_dir, cfg.tracking, {}, default_name="t")
        self.rounds: list[tuple[int, list[str], float]] = []

    def _generate_and_score(self, records, busy):
        ids = [r["id"] for r in records]
        noise = float(torch.rand(()))           # the sampling's use of the RNG
        self.rounds.append((self.global_step, ids, noise))
        if self.global_step == self.fail_at and sum(1 for s, _, _ in self.rounds if s == self.fail_at) == 2:
            raise RuntimeError("ray.exceptions.ActorDiedError: the rollout worker died")
        busy["gen"] = busy.get("gen", 0.0) + 1.0
        return _batch(ids, [[0.0, 1.0] if i in self.signal else [1.0, 1.0] for i in ids])


def _cfg(run_dir: Path, *extra: str):
    return load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", "trainer.total_steps=4",
                        "trainer.train_batch_size=2", "actor.ppo_mini_batch_size=2", "rollout.n=2",
                        "trainer.save_freq=0", "trainer.export_hf=false", "tracking.wandb_mode=disabled",
                        "trainer.val_freq=0", "eval.freq=0", "trainer.log_samples_freq=0",
                        "algorithm.filter_groups.enable=true", "algorithm.filter_groups.max_num_gen_batches=3",
                        *extra])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _order(num_batches: int) -> list[list[str]]:
    """The ids of the first batches an uninterrupted loader draws."""
    loader = PromptLoader(RECORDS, 2)
    return [[r["id"] for r in loader.next_batch()] for _ in range(num_batches)]


def test_rounds_draw_batches_until_the_training_batch_is_full(tmp_path):
    order = _order(2)
    # round 1 keeps one group, round 2 one more: the batch is full after 2 rounds
    signal = {order[0][1], order[1][0], order[1][1]}
    trainer = _FilteringTrainer(_cfg(tmp_path), signal=signal)
    trainer.global_step = 1
    busy: dict[str, float] = {}
    batch, acc = trainer._sample_filtered_batch(busy)
    assert [r["id"] for r in batch.records] == [order[0][1], order[1][0]]       # the surplus order[1][1] is cut
    assert batch.scores.tolist() == [0.0, 1.0, 0.0, 1.0] and busy == {"gen": 2.0}
    assert trainer.loader.state.batches_served == 2
    assert acc.metrics(trainer._response_group_multiple()) == {
        "batch/num_gen_batches": 2.0, "batch/generated_groups": 4.0, "batch/kept_groups": 3.0,
        "batch/dropped_groups": 1.0, "batch/dropped_zero_variance": 1.0, "batch/dropped_out_of_bounds": 0.0,
        "batch/trained_groups": 2.0, "batch/underfilled": 0.0, "critic/score_all/mean": 5 / 8}
    assert _rows(tmp_path / "batches.jsonl") == [
        {"step": 1, "ids": order[0] + order[1], "kept": [order[0][1], order[1][0]]}]


def test_underfilled_batch_trains_on_what_was_kept(tmp_path, caplog):
    order = _order(3)
    trainer = _FilteringTrainer(_cfg(tmp_path), signal={order[2][0]})
    trainer.global_step = 1
    with caplog.at_level("WARNING", logger="rl.driver"):
        batch, acc = trainer._sample_filtered_batch({})
    assert [r["id"] for r in batch.records] == [order[2][0]] and acc.rounds == 3
    assert "kept 1 of 2 groups after 3 generation rounds" in caplog.text and "training on 1 groups" in caplog.text
    assert acc.metrics()["batch/underfilled"] == 1.0


def test_steps_without_kept_groups_skip_the_update_and_resume_rewinds_to_the_step_start(tmp_path, caplog):
    # No group has a signal: every step uses its 3 rounds, logs its metrics and skips the update.
    torch.manual_seed(0)
    reference = _FilteringTrainer(_cfg(tmp_path / "ref"))
    with caplog.at_level("WARNING", logger="rl.driver"):
        last = reference.fit()
    assert "skipping the actor update and weight sync" in caplog.text
    assert reference.groups.actor.calls == ["save_checkpoint"]                 # only the final checkpoint
    assert last["batch/underfilled"] == 1.0 and last["batch/kept_groups"] == 0.0
    assert last["batch/num_gen_batches"] == 3.0 and last["batch/dropped_zero_variance"] == 6.0
    assert last["critic/score_all/mean"] == 1.0 and "actor/pg_loss" not in last and "timing_s/step" in last
    ref_batches = {r["step"]: r["ids"] for r in _rows(tmp_path / "ref" / "batches.jsonl")}
    loader = PromptLoader(RECORDS, 2)                                          # 3 batches per step, across epochs
    assert ref_batches == {s: [r["id"] for _ in range(3) for r in loader.next_batch()] for s in range(1, 5)}
    state = reference.ckpt.load_trainer_state(reference.ckpt.latest())
    assert state.extra["loader"] == loader.state_dict() and state.extra["loader"]["epoch"] == 2

    # Step 3 fails in its second round: the checkpoint of step 2 has the loader after 6 batches.
    torch.manual_seed(0)
    broken = _FilteringTrainer(_cfg(tmp_path / "run"), fail_at=3)
    with pytest.raises(RuntimeError, match="rollout worker died"):
        broken.fit()
    state = broken.ckpt.load_trainer_state(broken.ckpt.latest())
    loader = PromptLoader(RECORDS, 2)
    for _ in range(6):
        loader.next_batch()
    assert state.step == 2 and state.extra["loader"] == loader.state_dict()

    torch.manual_seed(123)
    resumed = _FilteringTrainer(_cfg(tmp_path / "run"))
    assert resumed._maybe_resume() is not None
    resumed.fit()
    assert resumed.rounds == [r for r in reference.rounds if r[0] > 2]          # same prompts, same random numbers


class _Generated(Exception):
    pass


def test_disabled_filtering_draws_one_batch_per_step(tmp_path):
    trainer = _FilteringTrainer(_cfg(tmp_path, "algorithm.filter_groups.enable=false"))
    calls = []

    def generate(records, busy, sleep_after=False):
        calls.append(([r["id"] for r in records], sleep_after))
        raise _Generated

    trainer._sample_filtered_batch = lambda busy: pytest.fail("dynamic sampling is off")
    trainer._generate_responses = generate
    trainer.global_step = 1
    with pytest.raises(_Generated):
        trainer.train_step()
    assert calls == [(_order(1)[0], True)] and trainer.loader.state.batches_served == 1
    assert _rows(tmp_path / "batches.jsonl") == [{"step": 1, "ids": _order(1)[0]}]
