"""One-step off-policy generation (``trainer.off_policy_steps=1``): the rollout engines generate
the next step's batch while the actor trains on the current one.

Schedule of step ``k`` (weights version ``v`` = actor updates the weights contain)::

    _generate        wait for batch k (generated with version k-2 during step k-1; scored as its
                     response groups arrived), wait for the push of version k-1 to the engines,
                     then start batch k+1 in the background with version k-1 (not at the last step)
    _encode ... _update_actor    as in the synchronous driver, on batch k; the old log-probs
                     come from the current actor (version k-1), so PPO's ratio covers the staleness
    _sync_weights    start pushing version k once batch k+1's generation runs on every engine:
                     the engines take the weights when that generation ends (a rollout actor runs
                     one call at a time), the gather overlaps the generation

so the batch of step ``k`` is one update stale (``training/off_policy/trajectory_staleness/*`` = 1;
0 at step 1, whose batch is generated at once with the starting weights). The rollout log-probs
stay in the batch (``RolloutBatch.rollout_log_probs``) for the rollout correction.

Resume: the checkpoint after step ``k`` holds batch ``k+1``'s responses
(``off_policy_batch.json``: its prompts as the loader position they were drawn from, token ids,
texts, rollout log-probs, finish reasons and weights version). A resumed run trains step ``k+1``
on that batch (its rewards are scored again) and continues as the uninterrupted run: same data
order, same sampling seeds, same weights at every generation.

Validation and checkpoints wait for the generation in flight (and validation for the weights of
the step), so they see the same engine state as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rl.batch import GRPOBatch, Phase, RolloutBatch, flatten_rollout
from rl.config import Config
from rl.driver import GRPOTrainer
from rl.prompt_loader import PromptLoader

log = logging.getLogger(__name__)

#: The pending batch in a checkpoint's step directory.
PENDING_FILE = "off_policy_batch.json"
#: verl's staleness metrics (versions the trained batch lags behind the policy being updated).
STALENESS_KEYS = tuple(f"training/off_policy/trajectory_staleness/{s}" for s in ("mean", "max", "min"))


def trainer_class(cfg: Config) -> type[GRPOTrainer]:
    """The driver class of ``cfg``: :class:`OneStepOffPolicyTrainer` when ``trainer.off_policy_steps=1``."""
    import rl.driver

    return OneStepOffPolicyTrainer if cfg.trainer.off_policy_steps else rl.driver.GRPOTrainer  # looked up now


@dataclass
class PendingGeneration:
    """A batch generating (or generated) ahead of the step that trains on it.

    ``future`` resolves to ``(RolloutBatch (unscored), PendingScores or None, generation seconds)``;
    ``started`` is set once every engine runs the generation."""

    step: int                           # the step that trains on it
    drawn_at: int                       # the step during which its prompts were drawn
    version: int                        # actor updates in the weights that generate it
    loader_before: dict[str, Any]       # loader position its prompts were drawn from
    sampling_before: Optional[dict[str, Any]]
    future: Future
    started: threading.Event = field(default_factory=threading.Event)

    def wait_started(self) -> None:
        """Until every engine runs the generation (or it has already ended, failed included)."""
        while not self.started.wait(0.05) and not self.future.done():
            pass

    def ok(self) -> bool:
        return self.future.done() and self.future.exception() is None

    def to_json(self) -> dict[str, Any]:
        rollout: RolloutBatch = self.future.result()[0]
        return {"step": self.step, "version": self.version, "loader_before": self.loader_before,
                "ids": [str(r.get("id", "")) for r in rollout.records], "n": rollout.n,
                "group_index": rollout.group_index, "response_ids": rollout.response_ids,
                "response_texts": rollout.response_texts, "rollout_log_probs": rollout.rollout_log_probs,
                "finish_reasons": rollout.finish_reasons}

    @classmethod
    def from_json(cls, data: dict[str, Any], loader: PromptLoader) -> "PendingGeneration":
        """The saved batch, its prompts drawn again from ``loader``'s records at ``loader_before``."""
        again = PromptLoader(loader.records, loader.batch_size, seed=loader.seed)
        again.load_state_dict(data["loader_before"])
        records = again.next_batch()
        if [str(r.get("id", "")) for r in records] != list(data["ids"]):
            raise ValueError(f"{PENDING_FILE}: the prompts at the saved loader position are not the saved ones "
                             "(the training samples changed since the checkpoint)")
        rollout = RolloutBatch(records, int(data["n"]), list(data["group_index"]), data["response_ids"],
                               data["response_texts"], data["rollout_log_probs"], data["finish_reasons"])
        future: Future = Future()
        future.set_result((rollout, None, 0.0))
        pending = cls(int(data["step"]), int(data["step"]) - 1, int(data["version"]), data["loader_before"], None,
                      future)
        pending.started.set()
        return pending


class OneStepOffPolicyTrainer(GRPOTrainer):
    """:class:`rl.driver.GRPOTrainer` with one-step off-policy generation (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pending: Optional[PendingGeneration] = None    # the next step's batch
        self._current: Optional[PendingGeneration] = None    # the batch of the step in progress
        self._gen_pool = ThreadPoolExecutor(1, thread_name_prefix="gen-ahead")
        self._push_pool = ThreadPoolExecutor(1, thread_name_prefix="weight-push")
        self._push: Optional[tuple[int, Future]] = None       # (version, push in flight)
        self._rollout_version = 0      # actor updates in the engines' weights
        self._sync_bytes = 0           # bytes of the last completed push

    # ------------------------------------------------------------ phases
    def _generate(self, batch: GRPOBatch) -> GRPOBatch:
        """Take this step's batch (generated ahead, or now at the first step), then start the next one."""
        step = self.global_step
        with self.timer.phase("gen"):
            if self._pending is None:           # first step (or a checkpoint without a pending batch)
                self._start_generation(step)
            self._current, self._pending = self._pending, None
            rollout, scores, seconds = self._current.future.result()
        if scores is None:                      # restored from a checkpoint: score it now
            scores = self.groups.reward.submit(rollout.reward_groups())
        batch.rollout, batch.pending_rewards = rollout, scores
        batch.add_busy("gen", seconds)
        batch.staleness = (step - 1) - self._current.version
        self.tracker.log_batch([str(r.get("id", "")) for r in rollout.records], step)
        with self.timer.phase("update_weights"):
            self._wait_push()                   # the engines hold version step-1
            batch.weight_sync_bytes = self._sync_bytes
        if step < self.cfg.trainer.total_steps:
            self._start_generation(step + 1)
        return batch.advance(Phase.GENERATED)

    def _sync_weights(self, batch: GRPOBatch) -> GRPOBatch:
        """Start pushing the updated weights; the engines take them after the generation in flight."""
        with self.timer.phase("update_weights"):
            if self._pending is not None:
                self._pending.wait_started()
            version = self.global_step
            self._push = (version, self._push_pool.submit(self._push_weights))
        return batch.advance(Phase.SYNCED)

    def _step_metrics(self, batch: GRPOBatch) -> dict[str, float]:
        metrics = super()._step_metrics(batch)
        if batch.staleness is not None:
            metrics.update({k: float(batch.staleness) for k in STALENESS_KEYS})
        return metrics

    # ------------------------------------------------------------ generation ahead
    def _start_generation(self, step: int) -> None:
        """Draw ``step``'s prompts and generate them in the background with the engines' weights."""
        if self._push is not None:
            raise RuntimeError("off-policy generation started while a weight push is in flight")
        loader_before, sampling_before = self.loader.state_dict(), self._sampling_state()
        records = self.loader.next_batch()
        started = threading.Event()
        future = self._gen_pool.submit(self._generate_ahead, records, started)
        self._pending = PendingGeneration(step, self.global_step, self._rollout_version, loader_before,
                                          sampling_before, future, started)

    def _generate_ahead(self, records: list[dict], started: threading.Event) -> tuple[RolloutBatch, Any, float]:
        """(background thread) Generate ``rollout.n`` responses per record; each response group goes to
        the reward pool as it arrives. No driver timer here: the step times its waits."""
        n = self.cfg.rollout.n
        pending = self.groups.reward.submit([])

        def score_groups(first: int, piece: Any) -> None:
            chunk = flatten_rollout(records[first:first + piece.num_prompts], [piece], n=n)
            self.groups.reward.submit(chunk.reward_groups(), pending, first_index=first)

        try:
            outputs, seconds = self.groups.rollout.generate(records, self.sampling, on_groups=score_groups,
                                                            on_start=started.set)
        finally:
            started.set()
        return flatten_rollout(records, outputs, n=n), pending, seconds

    def _push_weights(self) -> int:
        sent = super()._push_weights()
        self._sync_bytes = sent
        return sent

    def _wait_push(self) -> None:
        """Until the push in flight (if any) is in the engines."""
        if self._push is not None:
            version, future = self._push
            self._push = None
            future.result()
            self._rollout_version = version

    def _wait_generation(self) -> None:
        """Until the generation in flight (if any) has ended (its errors surface at its step)."""
        if self._pending is not None:
            self._pending.future.exception()

    def validate(self) -> dict[str, float]:
        """Validation sees the weights of the step just trained, after the generation in flight."""
        self._wait_generation()
        self._wait_push()
        return super().validate()

    # ------------------------------------------------------------ checkpoints
    def _maybe_resume(self):
        state = super()._maybe_resume()
        if state is not None:
            self._rollout_version = self.global_step       # setup pushes the resumed weights
            path = self.ckpt.resolve(self.cfg.trainer.resume) / PENDING_FILE
            if path.is_file():
                self._pending = PendingGeneration.from_json(json.loads(path.read_text()), self.loader)
                log.info("resumed the off-policy batch of step %d (weights of step %d)", self._pending.step,
                         self._pending.version)
        return state

    def _checkpoint_extra(self, step_dir: Path) -> dict[str, Any]:
        """Write the pending batch (waiting for its generation) next to the trainer state. When its
        generation failed, the checkpoint gets the loader position and seed counters from before its
        prompts were drawn instead (these keys replace the driver's): a resume generates them again."""
        self._wait_generation()
        pending = self._pending
        if pending is None:
            return {}
        if not pending.ok():
            return {"loader": pending.loader_before,
                    **({"rollout": pending.sampling_before} if pending.sampling_before is not None else {})}
        (step_dir / PENDING_FILE).write_text(json.dumps(pending.to_json()))
        return {"off_policy": {"pending_step": pending.step, "file": PENDING_FILE}}

    def _save_after_failure(self, loader_state: dict[str, Any], rng_state: Any,
                            sampling_state: Optional[dict[str, Any]] = None) -> None:
        """Step ``k`` failed: checkpoint step ``k-1`` with batch ``k`` as its pending batch when that
        batch was generated (drawn in an earlier step); when its generation failed, rewind the loader
        and seed counters to before its prompts were drawn (a resume generates them again)."""
        self._wait_generation()
        failed, self._pending = self._current, None
        if failed is not None and failed.drawn_at < self.global_step:
            if failed.ok():
                self._pending = failed
            else:
                loader_state, sampling_state = failed.loader_before, failed.sampling_before or sampling_state
        super()._save_after_failure(loader_state, rng_state, sampling_state)

    def fit(self) -> dict[str, float]:
        try:
            return super().fit()
        finally:
            self._drain()

    def _drain(self) -> None:
        """Let the background generation and weight push end (their errors were or will be raised)."""
        for future in ([self._pending.future] if self._pending is not None else []) + \
                      ([self._push[1]] if self._push is not None else []):
            future.exception()

    def shutdown(self) -> None:
        self._gen_pool.shutdown(wait=False, cancel_futures=True)
        self._push_pool.shutdown(wait=False, cancel_futures=True)
        super().shutdown()
