"""One-step off-policy generation (rl.off_policy) on fake worker groups (no Ray, no model).

The fakes keep their own truth: the rollout engine records the weights version it generated
each batch with (a weight load waits until a generation in progress ends, as a Ray actor running
one call at a time), the actor counts its updates and keeps a digest of every update's inputs as
its "weights". The tests check the schedule against that truth (each batch one update stale,
generated while the previous update ran), the data order against a synchronous run, and exact
resume after a kill or a failed step against an uninterrupted run.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import rl.driver
from rl.config import ConfigError, load_config, validate
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.models.encoded_batch import EncodedBatch
from rl.off_policy import PENDING_FILE, STALENESS_KEYS, OneStepOffPolicyTrainer, trainer_class
from rl.prompt_loader import PromptLoader
from rl.rollout.base import GeneratedResponse, RolloutOutput
from rl.tracking import Tracker

N = 2
RECORDS = [{"id": f"p{i}", "query": f"q{i}", "ground_truth": {}} for i in range(6)]
CLOCK = ("timing_s/", "timing_busy_s/", "perf/time_per_step", "perf/throughput")


def _encode(processor, samples, response_ids) -> EncodedBatch:
    rows, width = len(response_ids), max(len(r) for r in response_ids)
    responses = torch.zeros(rows, width, dtype=torch.long)
    mask = torch.zeros(rows, width, dtype=torch.long)
    for i, ids in enumerate(response_ids):
        responses[i, :len(ids)] = torch.tensor(ids)
        mask[i, :len(ids)] = 1
    prompt = torch.ones(rows, 1, dtype=torch.long)
    return EncodedBatch(
        input_ids=torch.cat([prompt, responses], 1), attention_mask=torch.cat([prompt, mask], 1),
        position_ids=torch.zeros(3, rows, 1 + width, dtype=torch.long),
        mm_token_type_ids=torch.zeros(rows, 1 + width, dtype=torch.long),
        responses=responses, response_mask=mask, pixel_values=[None] * rows, image_grid_thw=[None] * rows,
        pad_token_id=0)


class _Engine:
    """One rollout engine. Weights = (version, digest) of the actor's last push; a response's
    tokens and text depend on the weights, the prompt and the seed counter."""

    workers = ["engine-0"]

    def __init__(self, log: list, fail_call: int = 0):
        self.log = log
        self.weights = (0, "init")
        self.calls = 0
        self.fail_call = fail_call
        self.lock = threading.Lock()      # held by a generation: a weight load waits for it
        self.generated: list[tuple[list[str], int]] = []   # (prompt ids, weights version) per call

    def generate(self, records, sampling, on_groups=None, on_start=None):
        self.log.append(("gen call", [r["id"] for r in records]))
        time.sleep(0.1)     # the call reaches the engine later than the update takes: a push sent before
        with self.lock:     # the generation runs (not waiting for on_start) would overtake it
            self.calls += 1
            call = self.calls
            version, digest = self.weights
            self.log.append(("gen start", [r["id"] for r in records], version))
            if on_start is not None:
                on_start()
            time.sleep(0.05)
            if call == self.fail_call:
                raise RuntimeError("the rollout worker died")
            pieces = []
            for g, record in enumerate(records):
                responses = []
                for k in range(N):
                    token = 10 + zlib.crc32(repr((record["id"], k, digest, call)).encode()) % 7
                    responses.append(GeneratedResponse(0, [token] * (k + 1), [-0.1 * token] * (k + 1),
                                                       f"{record['id']}/{k}/{token}", "stop"))
                piece = RolloutOutput([[1]], responses, n=N)
                if on_groups is not None:
                    on_groups(g, piece)
                pieces.append(piece)
            self.generated.append(([r["id"] for r in records], version))
            self.log.append(("gen end", [r["id"] for r in records], version))
        return pieces, 0.05

    def load(self, weights) -> None:
        with self.lock:
            self.weights = weights

    def sampling_state(self) -> dict:
        return {"calls": [self.calls]}

    def load_sampling_state(self, state: dict) -> None:
        self.calls = state["calls"][0]

    def shutdown(self) -> None:
        pass


class _Reward:
    """Score of ``<id>/<k>/<token>`` = token - 10 (0..6)."""

    workers = ["scorer"]

    def submit(self, groups, pending=None, first_index=0):
        pending = pending or SimpleNamespace(groups={}, failures=0, restarts=0, busy_s=0.0)
        for offset, (responses, _, _) in enumerate(groups):
            pending.groups[first_index + offset] = responses
        return pending

    def collect(self, pending):
        return [[{"score": float(int(t.split("/")[2]) - 10)} for t in pending.groups[i]] for i in sorted(pending.groups)]

    def shutdown(self) -> None:
        pass


class _Actor:
    """Two fake ranks. Its weights: the update count and a digest of every update's inputs."""

    world_size = 2

    def __init__(self, engine: _Engine, log: list, fail_log_probs_at: int = 0):
        self.engine, self.log = engine, log
        self.version, self.digest = 0, "init"
        self.fail_log_probs_at = fail_log_probs_at
        self.log_prob_versions: list[int] = []
        self.trained: list[list[str]] = []

    def shard(self, items):
        return list(items.split(len(items) // self.world_size))

    def split_for_log_probs(self, encoded):
        return self.shard(encoded), None

    def compute_log_prob_async(self, shards):
        if self.version + 1 == self.fail_log_probs_at:
            raise RuntimeError("a policy worker died")
        self.log_prob_versions.append(self.version)
        return list(shards)

    def collect_log_probs(self, futures):
        # depends on the weights: the old log-probs of the current actor
        return torch.cat([-(s.responses.float() + self.version) / 10 * s.response_mask for s in futures]), 0.01

    def update_policy(self, encoded, advantages, old_log_probs, ref_log_probs, **_):
        self.log.append(("update", self.version))
        time.sleep(0.05)
        summary = f"{encoded.responses.tolist()}|{advantages.sum().item():.6f}|{old_log_probs.sum().item():.6f}"
        self.version += 1
        self.digest = str(zlib.crc32(f"{self.digest}|{summary}".encode()))
        self.log.append(("update end", self.version))
        return {"actor/pg_loss": float(advantages.abs().sum())}

    def push_weights(self, targets, bucket_mb, checkpoint_names=True, **_):
        self.engine.load((self.version, self.digest))
        self.log.append(("pushed", self.version))
        return 1024, 0.0

    def save_checkpoint(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "w.json").write_text(json.dumps([self.version, self.digest]))

    def load_checkpoint(self, path: str) -> None:
        self.version, self.digest = json.loads((Path(path) / "w.json").read_text())

    def shutdown(self) -> None:
        pass


def _trainer(run_dir: Path, *extra: str, fail_call: int = 0, fail_log_probs_at: int = 0) -> GRPOTrainer:
    cfg = load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", "trainer.train_batch_size=2",
                       f"rollout.n={N}", "actor.ppo_mini_batch_size=2", "trainer.total_steps=5",
                       "trainer.save_freq=2", "trainer.val_freq=0", "eval.freq=0", "trainer.log_samples_freq=0",
                       "trainer.val_before_train=false", "trainer.export_hf=false", "tracking.wandb_mode=disabled",
                       "trainer.off_policy_steps=1", *extra])
    trainer = trainer_class(cfg)(cfg, model_path="unused", train_records=list(RECORDS))
    trainer.log = []
    engine = _Engine(trainer.log, fail_call)
    trainer.groups = Groups(actor=_Actor(engine, trainer.log, fail_log_probs_at), rollout=engine, reward=_Reward())
    trainer.sampling = None
    # what setup does: resume, open the tracker, push the resumed weights
    state = trainer._maybe_resume()
    trainer.tracker = Tracker(trainer.run_dir, cfg.tracking, {}, default_name="t",
                              resume_step=trainer.global_step if state else None)
    if state:
        trainer._push_weights()
    trainer.metrics = {}
    trainer.step_callbacks.append(lambda step, m: trainer.metrics.__setitem__(step, m))
    return trainer


@pytest.fixture(autouse=True)
def no_ray_no_processor(monkeypatch):
    monkeypatch.setattr(rl.driver, "_put", lambda value: value)
    monkeypatch.setattr("rl.models.inputs.encode_for_training", _encode)


def _numbers(trainer) -> dict[int, dict]:
    return {s: {k: v for k, v in m.items() if not k.startswith(CLOCK)} for s, m in trainer.metrics.items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    rl.driver._put = lambda value: value   # module fixture: the autouse patch is function-scoped
    import rl.models.inputs as inputs
    saved = inputs.encode_for_training
    inputs.encode_for_training = _encode
    try:
        trainer = _trainer(tmp_path_factory.mktemp("ref"))
        trainer.fit()
        trainer.shutdown()
    finally:
        inputs.encode_for_training = saved
    return trainer


def test_each_batch_is_generated_one_update_stale_while_the_previous_update_runs(uninterrupted):
    trainer = uninterrupted
    engine, actor = trainer.groups.rollout, trainer.groups.actor
    loader = PromptLoader(list(RECORDS), 2, seed=0)
    order = [[r["id"] for r in loader.next_batch()] for _ in range(5)]
    # The synchronous data order; batch k generated with the weights after update k-2 (step 1: the start).
    assert engine.generated == [(order[k], max(k - 1, 0)) for k in range(5)]
    assert [trainer.metrics[s][STALENESS_KEYS[0]] for s in range(1, 6)] == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert all(trainer.metrics[s][k] == trainer.metrics[s][STALENESS_KEYS[0]] for s in range(1, 6) for k in STALENESS_KEYS)
    # the old log-probs come from the actor being updated (versions 0..4), not from the generating weights
    assert actor.log_prob_versions == [0, 1, 2, 3, 4] and actor.version == 5
    # (that batch k+1 is generated while update k runs is shown by the versions above: it is generated
    # with the weights from before update k; when its background call reaches the engine relative to
    # the update's start is up to the thread scheduler, so it is not asserted)
    log = trainer.log
    # no weight load while a generation runs (a push lands between "gen end" and the next "gen start")
    for k in range(1, 5):
        assert log.index(("gen end", order[k], k - 1)) < log.index(("pushed", k)) < \
            (log.index(("gen start", order[k + 1], k)) if k < 4 else len(log))
    # the last step starts no generation
    assert len(engine.generated) == 5
    assert trainer.metrics[5]["perf/weight_sync_mb"] == pytest.approx(1024 / 2**20)
    assert trainer.metrics[1]["perf/weight_sync_mb"] == 0.0   # nothing pushed before step 1


def test_synchronous_default_keeps_the_plain_driver_and_its_metrics(tmp_path):
    trainer = _trainer(tmp_path, "trainer.off_policy_steps=0")
    assert type(trainer) is GRPOTrainer
    trainer.fit()
    assert trainer.groups.rollout.generated == [(ids, k) for k, (ids, _) in enumerate(trainer.groups.rollout.generated)]
    assert not any(k.startswith("training/off_policy") for m in trainer.metrics.values() for k in m)


def test_a_killed_run_resumes_with_the_pending_batch_exactly(tmp_path, uninterrupted):
    class Killed(BaseException):
        pass

    first = _trainer(tmp_path)

    def kill_at_3(step, metrics):
        if step == 3:
            raise Killed()     # like SIGKILL: no failure handling, checkpoint 2 is the last one

    first.step_callbacks.append(kill_at_3)
    with pytest.raises(Killed):
        first.fit()
    first.shutdown()
    step_dir = first.ckpt.latest()
    assert step_dir.name == "global_step_2"
    saved = json.loads((step_dir / PENDING_FILE).read_text())
    assert saved["step"] == 3 and saved["version"] == 1          # batch 3, generated after update 1

    resumed = _trainer(tmp_path)
    assert resumed.global_step == 2 and resumed.groups.actor.version == 2
    resumed.fit()
    resumed.shutdown()
    # the resumed process generated batches 4 and 5 only, with the uninterrupted run's weights and seeds
    assert resumed.groups.rollout.generated == uninterrupted.groups.rollout.generated[3:]
    assert resumed.groups.rollout.calls == uninterrupted.groups.rollout.calls
    assert (resumed.groups.actor.version, resumed.groups.actor.digest) == \
        (uninterrupted.groups.actor.version, uninterrupted.groups.actor.digest)
    ref = _numbers(uninterrupted)
    assert _numbers(resumed) == {s: ref[s] for s in (3, 4, 5)}
    batches = [json.loads(line) for line in (tmp_path / "batches.jsonl").read_text().splitlines()]
    assert [(b["step"], b["ids"]) for b in batches] == [
        (json.loads(line)["step"], json.loads(line)["ids"])
        for line in (uninterrupted.run_dir / "batches.jsonl").read_text().splitlines()]


def test_a_step_failing_before_the_update_checkpoints_its_batch_as_pending(tmp_path, uninterrupted):
    broken = _trainer(tmp_path, fail_log_probs_at=3)
    with pytest.raises(RuntimeError, match="policy worker died"):
        broken.fit()
    broken.shutdown()
    assert broken.ckpt.complete_steps() == [2]
    assert json.loads((broken.ckpt.latest() / PENDING_FILE).read_text())["step"] == 3
    resumed = _trainer(tmp_path)
    resumed.fit()
    resumed.shutdown()
    assert resumed.groups.actor.digest == uninterrupted.groups.actor.digest
    ref = _numbers(uninterrupted)
    assert _numbers(resumed) == {s: ref[s] for s in (3, 4, 5)}


def test_a_failed_generation_rewinds_to_before_its_prompts(tmp_path, uninterrupted):
    # call 4 generates batch 4 during step 3; it fails, step 4 sees the error before its update
    broken = _trainer(tmp_path, fail_call=4)
    with pytest.raises(RuntimeError, match="rollout worker died"):
        broken.fit()
    broken.shutdown()
    # step 3 completed (its checkpoint was not due): it is saved now, with the loader position and seed
    # counter from before batch 4 was drawn, and no pending batch
    assert broken.ckpt.complete_steps() == [2, 3] and broken.groups.actor.version == 3
    state = broken.ckpt.load_trainer_state(broken.ckpt.latest())
    assert state.extra["loader"]["batches_served"] == 3 and state.extra["rollout"] == {"calls": [3]}
    assert not (broken.ckpt.latest() / PENDING_FILE).exists()
    resumed = _trainer(tmp_path)
    resumed.fit()
    resumed.shutdown()
    # batch 4 is generated again (with the weights of step 3: staleness 0 on that step), then on schedule
    ids = [ids for ids, _ in uninterrupted.groups.rollout.generated]
    assert resumed.groups.rollout.generated == [(ids[3], 3), (ids[4], 3)]
    assert resumed.metrics[4][STALENESS_KEYS[0]] == 0.0 and resumed.metrics[5][STALENESS_KEYS[0]] == 1.0


@pytest.mark.parametrize("overrides, message", [
    (["trainer.off_policy_steps=2"], "trainer.off_policy_steps"),
    (["trainer.off_policy_steps=1", "algorithm.filter_groups.enable=true"], "dynamic sampling"),
    (["trainer.off_policy_steps=1", "cluster=1x4gpu"], "cluster.rollout.colocate_with"),
])
def test_unsupported_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(load_config(["recipe=quickstart", *overrides]))


def test_checkpoint_holds_the_rollout_log_probs(uninterrupted):
    saved = json.loads((uninterrupted.ckpt.latest() / PENDING_FILE).read_text()) \
        if (uninterrupted.ckpt.latest() / PENDING_FILE).exists() else None
    assert saved is None     # after the last step nothing is pending
    step4 = uninterrupted.ckpt.step_dir(4) / PENDING_FILE
    data = json.loads(step4.read_text())
    assert data["step"] == 5 and len(data["rollout_log_probs"]) == 2 * N
    assert all(len(lp) == len(ids) for lp, ids in zip(data["rollout_log_probs"], data["response_ids"]))
    assert data["rollout_log_probs"][0][0] == pytest.approx(-0.1 * data["response_ids"][0][0])
