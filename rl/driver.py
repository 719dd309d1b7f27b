"""The single controller: one GRPO step, in order (the only place that knows the order).

:meth:`GRPOTrainer.train_step` threads one :class:`rl.batch.GRPOBatch` through the phases of
a step, each a method that takes the batch and returns it (a subclass can override one
phase and keep the others)::

    _generate            rollout group: rollout.n responses per prompt, streamed back; each
                         response group goes to the reward pool as soon as it is complete
    _encode              driver: the model's tensors
    _start_log_probs     actor (and reference) group: old (and reference) log-probs start on
                         the rank shards, overlapped with the rest of the scoring
    _score               reward pool: wait for every reward
    _compute_log_probs   wait for the log-probs
    _compute_advantages  driver: advantages (verl core_algos estimator)
    _update_actor        actor group: update -> actor/* metrics
    _sync_weights        actor rank 0 -> rollout workers (bucketed, not through the driver)
    _step_metrics        the logged dict (rl.metrics)

:meth:`fit` loops over :meth:`train_step`: tracking (metrics.jsonl + W&B), a checkpoint every
k steps, validation every m steps. The batch's :class:`rl.batch.Phase` tells a failing
step's handler whether the actor was already being changed.

With ``algorithm.filter_groups.enable`` (dynamic sampling, :mod:`rl.dynamic_sampling`)
:meth:`_generate_filtered` replaces :meth:`_generate`: generation and scoring repeat on
further prompt batches, each round scored in full and filtered, until
``trainer.train_batch_size`` response groups with a learning signal are kept; the other
phases then run on the kept groups only (and are skipped when no group was kept).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from rl.algos import compute_advantages
from rl.rollout_corr import apply_rollout_correction, rollout_log_probs, update_kwargs
from rl.batch import GRPOBatch, Phase, RolloutBatch, flatten_rollout
from rl.checkpoint import MODEL_SUBDIR, CheckpointManager, TrainerState, capture_rng_state, restore_rng_state
from rl.config import Config, to_dict
from rl.diversity import is_grounding_record, validation_metrics
from rl.dynamic_sampling import GroupAccumulator, group_multiple
from rl.metrics import perf_metrics, reward_failure_metrics, reward_metrics, step_metrics
from rl.groups import Groups, build_groups, build_placement
from rl.placement import PlacementPlan
from rl.prompt_loader import PromptLoader
from rl.timing import PhaseTimer
from rl.tracking import Tracker
from rl.workers.lora import serves_adapter
from rl.workers.policy_group import PendingLogProbs

if TYPE_CHECKING:
    from rl.eval.actor import Evaluator
    from rl.workers.reward_pool import PendingScores

log = logging.getLogger(__name__)


class GRPOTrainer:
    def __init__(self, cfg: Config, model_path: str, train_records: list[dict], val_records: Sequence[dict] = (),
                 reference_path: Optional[str] = None):
        self.cfg = cfg
        self.model_path = model_path
        self.reference_path = reference_path or model_path
        self.run_dir = Path(cfg.trainer.run_dir)
        self.loader = PromptLoader(train_records, cfg.trainer.train_batch_size, seed=cfg.trainer.seed)
        self.val_records = list(val_records)
        self.ckpt = CheckpointManager(self.run_dir, keep_last=cfg.trainer.keep_last_checkpoints)
        self.timer = PhaseTimer()
        self.global_step = 0
        self.groups: Optional[Groups] = None
        self.tracker: Optional[Tracker] = None
        self.plan: Optional[PlacementPlan] = None
        self._stop_requested = False
        self.stop_signal: Optional[int] = None  # the signal that stopped fit early (None: not stopped)
        self._processor = None
        self.evaluator: Optional[Evaluator] = None
        self.eval_failures = 0
        self.batch: Optional[GRPOBatch] = None  # the batch of the step in progress (set by train_step)
        # Called as callback(step, metrics) after each step is logged (e.g. Ray Tune reporting in sweeps).
        self.step_callbacks: list[Callable[[int, dict[str, float]], None]] = []

    # ------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        from rl.models.loading import load_processor
        from rl.rollout.base import SamplingParams

        self._processor = load_processor(self.model_path)
        self.sampling = SamplingParams.from_config(self.cfg.rollout)
        self.val_sampling = SamplingParams.from_config(self.cfg.rollout, validation=True)
        self.plan = build_placement(self.cfg)
        self.plan.create()
        # Every group (and the evaluator) starts at once unless roles share devices (rl.groups).
        # One lr-scheduler step per update_policy call, i.e. per GRPO step.
        self.groups = build_groups(self.cfg, self.plan, self.model_path, self.reference_path,
                                   self.cfg.trainer.total_steps)
        if "evaluator" in self.plan.slots:
            from rl.eval.actor import Evaluator

            self.evaluator = Evaluator(self.cfg, self.plan, wait=False)
        self.groups.ready()
        if self.evaluator is not None:
            self.evaluator.ready()
        state = self._maybe_resume()
        self.tracker = Tracker(
            self.run_dir, self.cfg.tracking, to_dict(self.cfg),
            run_id=(state.wandb_run_id or None) if state else None,
            resume_step=self.global_step if state else None,
            default_name=self.cfg.trainer.experiment_name,
            default_group=self.cfg.trainer.experiment_name, job_type="grpo",
        )
        if state:
            # The rollout engine starts from the initial weights: sync the resumed actor into it.
            self._push_weights()

    def _push_weights(self) -> int:
        """Actor -> rollout engines, bucketed; returns the bytes sent."""
        sent, _ = self.groups.actor.push_weights(
            self.groups.rollout.workers, self.cfg.rollout.weight_sync_bucket_mb,
            checkpoint_names=self.cfg.rollout.backend != "hf",
            **({"adapter": True} if serves_adapter(self.cfg) else {}),   # vLLM's LoRA serving (GPU)
        )
        return sent

    def _maybe_resume(self) -> Optional[TrainerState]:
        path = self.ckpt.resolve(self.cfg.trainer.resume)
        if path is None:
            return None
        state = self.ckpt.load_trainer_state(path)
        self.groups.actor.load_checkpoint(str(path / MODEL_SUBDIR))
        self.loader.load_state_dict(state.extra["loader"])
        restore_rng_state(state.rng)
        if "rollout" in state.extra:   # the rollout workers' seed counters (absent in older checkpoints)
            self.groups.rollout.load_sampling_state(state.extra["rollout"])
        self.global_step = int(state.step)
        log.info("resumed from %s at step %d", path, self.global_step)
        return state

    def shutdown(self) -> None:
        if self.evaluator is not None:
            self.evaluator.shutdown()
        if self.tracker is not None:
            self.tracker.finish()
        if self.groups is not None:
            self.groups.shutdown()
        if self.plan is not None:
            self.plan.remove()

    def request_stop(self, signum: Optional[int] = None, *_: Any) -> None:
        """SIGINT/SIGTERM: finish the current step, save a checkpoint, then ``fit`` returns;
        :attr:`stop_signal` keeps the first signal (the launcher exits with 128 + its number)."""
        self._stop_requested = True
        if self.stop_signal is None and signum is not None:
            self.stop_signal = int(signum)

    @property
    def interrupted(self) -> bool:
        """Whether a stop request ended :meth:`fit` before ``trainer.total_steps``."""
        return self._stop_requested and self.global_step < self.cfg.trainer.total_steps

    def _sampling_state(self) -> Optional[dict[str, Any]]:
        """The rollout workers' seed counters (None without a rollout group that keeps them)."""
        state = getattr(self.groups.rollout, "sampling_state", None) if self.groups is not None else None
        return state() if state is not None else None

    # ------------------------------------------------------------ template
    def fit(self) -> dict[str, float]:
        # Handlers can only be installed from the main thread (a Ray Tune trial runs fit in another one).
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = ({s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
                    if in_main_thread else {})
        last: dict[str, float] = {}
        try:
            total = self.cfg.trainer.total_steps
            if self.cfg.trainer.val_only or (self.cfg.trainer.val_before_train and self.global_step == 0):
                last = self.validate_start()
                if self.cfg.trainer.val_only:
                    return last
            bar = tqdm(total=total, initial=self.global_step, desc="GRPO", unit="step", dynamic_ncols=True)
            while self.global_step < total and not self._stop_requested:
                self.global_step += 1
                before_step = (self.loader.state_dict(), capture_rng_state(), self._sampling_state())
                self.batch = None
                try:
                    metrics = self.train_step()
                except Exception:
                    self._save_after_failure(*before_step)
                    raise
                if self._due(self.cfg.trainer.val_freq) or (self.global_step == total and self.cfg.trainer.val_freq):
                    with self.timer.phase("testing"):
                        metrics.update(self.validate())
                if self.evaluator is not None and (self._due(self.cfg.eval.freq) or self.global_step == total):
                    with self.timer.phase("eval_video"):
                        metrics.update(self.evaluate_videos())
                if self._due(self.cfg.trainer.save_freq) or self.global_step == total or self._stop_requested:
                    with self.timer.phase("save_checkpoint"):
                        self.save_checkpoint()
                metrics.update({k: v for k, v in self.timer.metrics().items() if k not in metrics})
                self.tracker.log(metrics, self.global_step)
                for callback in self.step_callbacks:
                    callback(self.global_step, metrics)
                last = metrics
                bar.update(1)
                bar.set_postfix(score=f"{metrics.get('critic/score/mean', float('nan')):.3f}",
                                step_s=f"{metrics.get('timing_s/step', 0):.1f}")
            bar.close()
            if self.cfg.trainer.export_hf and self.global_step >= total:
                self.groups.actor.export_hf(str(self.run_dir / "export"))
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return last

    def validate_start(self) -> dict[str, float]:
        """Validate the policy before training (``trainer.val_before_train``, ``trainer.val_only``) and log
        it at the current step (0 in a fresh run, before step 1): the held-out prompts when
        ``trainer.val_freq > 0`` (always with ``val_only``), the video evaluation when the evaluator is
        placed (``eval.freq > 0``). Returns the logged metrics ({} when nothing ran)."""
        self.timer.reset()
        metrics: dict[str, float] = {}
        if self.cfg.trainer.val_freq > 0 or self.cfg.trainer.val_only:
            with self.timer.phase("testing"):
                metrics.update(self.validate())
        if self.evaluator is not None:
            with self.timer.phase("eval_video"):
                metrics.update(self.evaluate_videos())
        if metrics:
            metrics["training/global_step"] = self.global_step
            metrics.update(self.timer.metrics())
            self.tracker.log(metrics, self.global_step)
        return metrics

    def _due(self, freq: int) -> bool:
        return freq > 0 and self.global_step % freq == 0

    def train_step(self) -> dict[str, float]:
        """One GRPO step: the phases in order, each taking and returning the step's batch."""
        self.timer.reset()
        batch = self.batch = GRPOBatch(step=self.global_step)
        if self.cfg.algorithm.filter_groups.enable:
            batch = self._generate_filtered(batch)
            if batch.rollout is None:          # no response group kept: no update this step
                return self._step_metrics(batch)
        else:
            batch = self._generate(batch)
        batch = self._encode(batch)
        batch = self._start_log_probs(batch)
        batch = self._score(batch)
        batch = self._compute_log_probs(batch)
        batch = self._compute_advantages(batch)
        batch = self._update_actor(batch)
        batch = self._sync_weights(batch)
        return self._step_metrics(batch)

    # ------------------------------------------------------------ phases
    def _generate(self, batch: GRPOBatch) -> GRPOBatch:
        """Draw the step's prompts (logged to ``batches.jsonl``), generate ``rollout.n`` responses
        each and start scoring them; the rollout engines then sleep on shared GPUs."""
        records = self.loader.next_batch()
        self.tracker.log_batch([str(r.get("id", "")) for r in records], self.global_step)
        # Scoring overlaps the rest of generation and the log-prob phases.
        batch.rollout, batch.pending_rewards = self._generate_responses(records, batch.busy, sleep_after=True)
        return batch.advance(Phase.GENERATED)

    def _generate_filtered(self, batch: GRPOBatch) -> GRPOBatch:
        """Dynamic sampling: rounds of generate + score + filter (:meth:`_sample_filtered_batch`).
        The batch comes back scored, or without a rollout when no response group was kept."""
        batch.rollout, batch.sampling = self._sample_filtered_batch(batch.busy)
        if batch.rollout is not None:
            batch.advance(Phase.GENERATED)
        return batch

    def _encode(self, batch: GRPOBatch) -> GRPOBatch:
        """The responses as the model's tensors (:class:`rl.models.encoded_batch.EncodedBatch`)."""
        with self.timer.phase("encode"):
            batch.encoded = batch.rollout.encode(self._processor)
        return batch.advance(Phase.ENCODED)

    def _start_log_probs(self, batch: GRPOBatch) -> GRPOBatch:
        """Start the old (actor) and reference log-probs on the policy workers, without waiting."""
        splits: dict[int, tuple[list[Any], Optional[list[int]]]] = {}
        with self.timer.phase("encode"):   # the shards' object-store copies count as encoding time
            # One object-store copy per distinct world size (both roles split alike); each rank
            # fetches only its shard.
            for g in self.groups.policies():
                if g.world_size not in splits:
                    shards, order = g.split_for_log_probs(batch.encoded)
                    splits[g.world_size] = ([_put(s) for s in shards], order)
        roles = {"reference": self.groups.reference}
        if not self.cfg.algorithm.rollout_correction.bypass_mode:   # bypass: the rollout's are the old log-probs
            roles["actor"] = self.groups.actor
        for role, group in roles.items():
            if group is not None:
                shards, order = splits[group.world_size]
                batch.log_prob_futures[role] = PendingLogProbs(group, group.compute_log_prob_async(shards), order)
        return batch

    def _score(self, batch: GRPOBatch) -> GRPOBatch:
        """Wait for the rewards still being computed and store them in the rollout."""
        if batch.pending_rewards is not None:
            self._collect_rewards(batch.rollout, batch.pending_rewards, batch.busy)
            batch.pending_rewards = None
        return batch.advance(Phase.SCORED)

    def _compute_log_probs(self, batch: GRPOBatch) -> GRPOBatch:
        """Wait for the old (bypass mode: the rollout's) and reference log-probs, (N, R); then rl.rollout_corr."""
        if self.cfg.algorithm.rollout_correction.bypass_mode:
            batch.old_log_probs = rollout_log_probs(batch.rollout, batch.encoded.response_mask)
        else:
            with self.timer.phase("old_log_prob"):
                batch.old_log_probs, seconds = batch.log_prob_futures.pop("actor").collect()
                batch.add_busy("old_log_prob", seconds)
        if "reference" in batch.log_prob_futures:
            with self.timer.phase("ref"):
                batch.ref_log_probs, seconds = batch.log_prob_futures.pop("reference").collect()
                batch.add_busy("ref", seconds)
        apply_rollout_correction(batch, self.cfg.algorithm.rollout_correction)
        return batch.advance(Phase.LOG_PROBS)

    def _compute_advantages(self, batch: GRPOBatch) -> GRPOBatch:
        """(N, R) advantages of the scores with ``algorithm.adv_estimator`` (GRPO: each score
        against its response group's mean and std)."""
        rollout = batch.rollout
        with self.timer.phase("adv"):
            batch.advantages, _ = compute_advantages(
                torch.as_tensor(rollout.scores, dtype=torch.float32), batch.encoded.response_mask,
                np.asarray(rollout.group_index), self.cfg.algorithm,
            )
        return batch.advance(Phase.ADVANTAGES)

    def _update_actor(self, batch: GRPOBatch) -> GRPOBatch:
        """One policy update of the actor on the batch (``actor/*`` metrics)."""
        batch.advance(Phase.UPDATING)   # from here on a failure may leave the actor between two steps
        with self.timer.phase("update_actor"):
            batch.actor_metrics = self.groups.actor.update_policy(
                batch.encoded, batch.advantages, batch.old_log_probs, batch.ref_log_probs, **update_kwargs(batch))
        return batch.advance(Phase.UPDATED)

    def _sync_weights(self, batch: GRPOBatch) -> GRPOBatch:
        """The updated weights into the rollout engines."""
        with self.timer.phase("update_weights"):
            batch.weight_sync_bytes = self._push_weights()
        return batch.advance(Phase.SYNCED)

    def _step_metrics(self, batch: GRPOBatch) -> dict[str, float]:
        """The step's logged metrics (:mod:`rl.metrics`); logs sample rows every
        ``trainer.log_samples_freq`` steps. A batch without a rollout (dynamic sampling kept
        nothing) logs the sampling counts and the reward failures of every round."""
        cfg = self.cfg
        step_s = time.perf_counter() - batch.started_at
        sampling = batch.sampling.metrics(self._response_group_multiple()) if batch.sampling is not None else {}
        if batch.rollout is None:
            samples = batch.sampling.all_generated()
            data = {**sampling, **reward_failure_metrics(samples)}
            perf: dict[str, float] = {}
        else:
            samples = batch.rollout
            data = reward_metrics(samples, batch.encoded, batch.advantages,
                                  max_response_length=cfg.rollout.max_response_length)
            data.update(sampling)
            data.update(batch.actor_metrics)
            data.update(batch.rollout_correction.metrics if batch.rollout_correction is not None else {})
            perf = perf_metrics(int(batch.encoded.attention_mask.sum()), step_s, self.groups.actor.world_size,
                                batch.weight_sync_bytes)
        metrics = step_metrics(self.global_step, self.loader.state.epoch, data, self.timer.metrics(), step_s,
                               batch.busy, perf)
        if self._due(cfg.trainer.log_samples_freq):
            count = cfg.trainer.log_samples_count
            self.tracker.log_samples(samples.sample_rows(count), self.global_step, views=samples.sample_views(count))
        return metrics

    # ------------------------------------------------------------ generation
    def _generate_responses(self, records: list[dict], busy: dict[str, float],
                            sleep_after: bool = False) -> tuple[RolloutBatch, PendingScores]:
        """Generate ``rollout.n`` responses per record and start scoring them.

        Asynchronous generation: every response group goes to the reward pool as soon as the
        rollout workers stream it back. Returns the (unscored) rollout and the reward pool's
        pending scores for :meth:`_collect_rewards`; adds the generation seconds to ``busy["gen"]``.
        ``sleep_after``: on shared GPUs free the engine's memory until the weight sync wakes it."""
        n = self.cfg.rollout.n
        pending = self.groups.reward.submit([])

        def score_groups(first: int, piece: Any) -> None:
            chunk = flatten_rollout(records[first:first + piece.num_prompts], [piece], n=n)
            self.groups.reward.submit(chunk.reward_groups(), pending, first_index=first)

        with self.timer.phase("gen"):
            outputs, seconds = self.groups.rollout.generate(records, self.sampling, on_groups=score_groups)
            busy["gen"] = busy.get("gen", 0.0) + seconds
            if sleep_after:
                self._sleep_rollout()
        return flatten_rollout(records, outputs, n=n), pending

    def _sleep_rollout(self) -> None:
        if self.cfg.cluster.rollout.colocate_with:  # shared GPUs: free the engine's memory until the sync wakes it
            self.groups.rollout.sleep()

    def _collect_rewards(self, rollout: RolloutBatch, pending: PendingScores, busy: dict[str, float]) -> None:
        """Wait for the rollout's scores and store them in it; adds to ``busy["reward"]``."""
        with self.timer.phase("reward"):
            scored = self.groups.reward.collect(pending)
        busy["reward"] = busy.get("reward", 0.0) + pending.busy_s / max(1, len(self.groups.reward.workers))
        rollout.set_rewards(scored, failed=pending.failures, restarts=pending.restarts)

    def _generate_and_score(self, records: list[dict], busy: dict[str, float]) -> RolloutBatch:
        """One generation round of dynamic sampling: the scored rollout of ``records``."""
        rollout, pending = self._generate_responses(records, busy)
        self._collect_rewards(rollout, pending, busy)
        return rollout

    def _sample_filtered_batch(self, busy: dict[str, float]) -> tuple[Optional[RolloutBatch], GroupAccumulator]:
        """Dynamic sampling: draw prompt batches, generate, score and filter until
        ``trainer.train_batch_size`` response groups are kept or ``max_num_gen_batches`` rounds are used.

        Returns the training rollout (the first kept groups; fewer than the batch size with a
        warning when the round limit was hit; ``None`` when no group was kept) and the
        accumulator with every round (for the ``batch/*`` metrics). Logs every prompt drawn to
        ``batches.jsonl`` with the kept ones."""
        fg = self.cfg.algorithm.filter_groups
        target = self.cfg.trainer.train_batch_size
        accumulator = GroupAccumulator.from_config(fg, target)
        while accumulator.wants_more():
            accumulator.add(self._generate_and_score(self.loader.next_batch(), busy))
        multiple = self._response_group_multiple()
        rollout = accumulator.kept_batch(multiple)
        kept_ids = [str(r.get("id", "")) for r in rollout.records] if rollout is not None else []
        self.tracker.log_batch(accumulator.record_ids(), self.global_step, kept_ids=kept_ids)
        if accumulator.num_trained(multiple) < target:
            log.warning(
                "step %d: dynamic sampling kept %d of %d groups after %d generation rounds "
                "(algorithm.filter_groups.max_num_gen_batches=%d); %s", self.global_step, accumulator.num_kept,
                target, accumulator.rounds, fg.max_num_gen_batches,
                f"training on {len(rollout.records)} groups" if rollout is not None
                else "skipping the actor update and weight sync of this step")
        if rollout is not None:
            self._sleep_rollout()
        return rollout, accumulator

    def _response_group_multiple(self) -> int:
        """Response groups per training batch must be a multiple of this for equal rank shards."""
        if self.groups is None:
            return 1
        return group_multiple(self.cfg.rollout.n, [g.world_size for g in self.groups.policies()])

    # ------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Greedy rollouts on held-out prompts, scored with the training reward (``val/...``)."""
        if not self.val_records:
            return {}
        records = self.val_records[: self.cfg.trainer.val_num_prompts]
        outputs, _ = self.groups.rollout.generate(records, self.val_sampling)
        rollout = flatten_rollout(records, outputs, n=self.cfg.rollout.val_n)
        pending = self.groups.reward.submit(rollout.reward_groups())
        rollout.set_rewards(self.groups.reward.collect(pending), failed=pending.failures, restarts=pending.restarts)
        out = {"val/score/mean": float(np.mean(rollout.scores))}
        for name, values in rollout.components.items():
            out[f"val/reward/{name}"] = float(np.mean(values))
        # Collapse check: distinct answers per query, well-formed box answers, response length in tokens.
        grounding = [is_grounding_record(rollout.records[g]) for g in rollout.group_index]
        out.update(validation_metrics(rollout.response_texts, rollout.group_index, grounding))
        out["val/response_length/mean"] = float(np.mean([len(ids) for ids in rollout.response_ids]))
        count = self.cfg.trainer.log_samples_count
        self.tracker.log_samples(rollout.sample_rows(count), self.global_step, views=rollout.sample_views(count),
                                 table="val_samples")
        return out

    def evaluate_videos(self) -> dict[str, float]:
        """The whole video pipeline (sampler -> grounding -> segmenter -> propagation -> J&F) on the
        evaluator actor with the current policy: ``val/J``, ``val/F``, ``val/J&F``, ... plus overlays; then
        each extra set of ``eval.datasets``: ``val/<name>/J&F``, ...

        A failing evaluation never stops training: it is logged with its traceback and counted
        (``val/eval_failures``, cumulative over the run), and the step goes on to its checkpoint."""
        try:
            return self._evaluate_videos()
        except Exception:  # noqa: BLE001 - any evaluator error (bad config, dead actor, data) is survivable
            self.eval_failures += 1
            log.exception("video evaluation at step %d failed (%d so far); training continues",
                          self.global_step, self.eval_failures)
            return {"val/eval_failures": float(self.eval_failures)}

    def _evaluate_videos(self) -> dict[str, float]:
        import shutil

        export = self.run_dir / "eval_export" / f"step_{self.global_step}"
        try:
            checkpoint_dir = self.groups.actor.export_hf(str(export))
            result = self.evaluator.evaluate(checkpoint_dir=checkpoint_dir, step=self.global_step)
            # The extra sets of eval.datasets (metrics val/<name>/..., no overlays) on the policy the evaluator holds.
            extra = [self.evaluator.evaluate(step=self.global_step, dataset=d.name) for d in self.cfg.eval.datasets]
        finally:
            shutil.rmtree(export, ignore_errors=True)
            if export.parent.is_dir() and not any(export.parent.iterdir()):
                export.parent.rmdir()
        if result.get("overlays"):
            self.tracker.log_overlays("val/overlays", result["overlays"], self.global_step)
        return {**result["metrics"], **{k: v for r in extra for k, v in r["metrics"].items()},
                "val/eval_failures": float(self.eval_failures)}

    # ------------------------------------------------------------ checkpoints
    def _save_after_failure(self, loader_state: dict[str, Any], rng_state: Any,
                            sampling_state: Optional[dict[str, Any]] = None) -> None:
        """A step failed (a dead rollout worker, an engine error, ...): keep the progress of the
        steps before it. If the actor was not touched yet, rewind the data position and RNG to
        the start of the failed step and checkpoint the last completed step, so that re-running
        the same command resumes exactly there; otherwise say which checkpoint a resume uses."""
        failed = self.global_step
        self.global_step -= 1
        saved = self.ckpt.complete_steps()
        saved_step = saved[-1] if saved else 0
        if self.batch is not None and self.batch.phase >= Phase.UPDATING:
            log.error("step %d failed during the actor update or weight sync; resuming continues from the "
                      "checkpoint of step %d", failed, saved_step)
            return
        if self.global_step <= saved_step:
            return
        self.loader.load_state_dict(loader_state)
        restore_rng_state(rng_state)
        try:
            path = self.save_checkpoint(sampling_state)
        except Exception:  # noqa: BLE001 - the actor may be gone too; the original error is re-raised
            log.exception("step %d failed and the checkpoint of step %d could not be saved either; resuming "
                          "continues from step %d", failed, self.global_step, saved_step)
            return
        log.error("step %d failed; saved the completed step %d to %s (re-run the same command to resume)",
                  failed, self.global_step, path)

    def save_checkpoint(self, sampling_state: Optional[dict[str, Any]] = None) -> Path:
        """Model + optimizer (DCP, written by the actor ranks), data position, RNG, W&B run id, the
        rollout workers' seed counters (``sampling_state``, default: the current ones)."""
        step = self.global_step
        sampling = sampling_state if sampling_state is not None else self._sampling_state()
        self.ckpt.begin(step)
        self.groups.actor.save_checkpoint(str(self.ckpt.model_dir(step)))
        state = TrainerState(
            step=step, epoch=self.loader.state.epoch, data_position=self.loader.state.cursor,
            data_seed=self.loader.seed, rng=capture_rng_state(),
            wandb_run_id=(self.tracker.run_id or "") if self.tracker else "",
            extra={"loader": self.loader.state_dict(), **({"rollout": sampling} if sampling is not None else {}),
                   **self._checkpoint_extra(self.ckpt.step_dir(step))},
        )
        return self.ckpt.finalize(step, state)

    def _checkpoint_extra(self, step_dir: Path) -> dict[str, Any]:  # a subclass's state (+ files in step_dir)
        return {}


def _put(value: Any) -> Any:
    import ray

    return ray.put(value)
