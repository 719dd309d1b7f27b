"""The single controller: one GRPO step, in order (the only place that knows the order).

::

    1 rollout group   generate(prompts, n)            -> responses (ids, text, logprobs), streamed
    2 reward pool     score(groups)                   ┐ each group as soon as it is generated;
    3 reference group log-probs(responses)            ├ Ray futures, overlapped with the rest
    4 actor group     old log-probs(responses)        ┘ of generation and with each other
    5 driver          advantages (verl core_algos estimator)
    6 actor group     update(batch)                   -> actor/* metrics
    7 weight sync     actor rank 0 -> rollout workers (bucketed, not through the driver)
    8 tracking        metrics.jsonl + W&B; checkpoint every k steps; validation every m steps

With ``algorithm.filter_groups.enable`` (dynamic sampling, :mod:`rl.dynamic_sampling`)
phases 1-2 repeat on further prompt batches, each round scored in full and filtered, until
``trainer.train_batch_size`` groups with a learning signal are kept; phases 3-7 then run on
the kept groups only (and are skipped when no group was kept).

:class:`GRPOTrainer` is a short template method: :meth:`fit` loops over
:meth:`train_step`; subclasses can override a phase without touching the rest.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from rl.algos import compute_advantages
from rl.batch import RolloutBatch, flatten_rollout, reward_metrics
from rl.checkpoint import MODEL_SUBDIR, CheckpointManager, TrainerState, capture_rng_state, restore_rng_state
from rl.config import Config, to_dict
from rl.diversity import is_grounding_record, validation_metrics
from rl.dynamic_sampling import GroupAccumulator, group_multiple
from rl.placement import PlacementPlan, roles_for
from rl.prompt_loader import PromptLoader
from rl.timing import PhaseTimer
from rl.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class Groups:
    """The Ray worker groups of a run."""

    actor: Any
    rollout: Any
    reward: Any
    reference: Optional[Any] = None

    def shutdown(self) -> None:
        for g in (self.rollout, self.reward, self.reference, self.actor):
            if g is not None:
                g.shutdown()


def build_placement(cfg: Config) -> PlacementPlan:
    """The run's placement plan (roles from :func:`rl.placement.roles_for`: reference with a KL loss,
    evaluator when ``eval.freq > 0``)."""
    return PlacementPlan(cfg.cluster, roles_for(cfg))


def build_groups(cfg: Config, plan: PlacementPlan, model_path: str, reference_path: str,
                 total_updates: int) -> Groups:
    from rl.workers.policy_group import PolicyGroup
    from rl.workers.reward_pool import RewardPool
    from rl.workers.rollout_group import RolloutGroup

    common = dict(model_cfg=cfg.model, actor_cfg=cfg.actor, rollout_n=cfg.rollout.n,
                  temperature=cfg.rollout.temperature, seed=cfg.trainer.seed)
    actor = PolicyGroup("actor", plan, model_path=model_path, total_steps=total_updates, **common)
    reference = None
    if "reference" in plan.slots:
        reference = PolicyGroup("reference", plan, model_path=reference_path, **common)
    rollout = RolloutGroup(cfg.rollout, model_path, plan, model_cfg=cfg.model, device=cfg.trainer.device,
                           seed=cfg.trainer.seed)
    reward = RewardPool(cfg.reward, [plan.actor_options("reward", i) for i in range(plan.slots["reward"].num_workers)])
    return Groups(actor=actor, rollout=rollout, reward=reward, reference=reference)


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
        self._processor = None
        self.evaluator: Optional[Any] = None
        self.eval_failures = 0
        self._actor_touched = False  # whether the current step has started to change the actor (set by train_step)
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
        # One lr-scheduler step per update_policy call, i.e. per GRPO step.
        self.groups = build_groups(self.cfg, self.plan, self.model_path, self.reference_path,
                                   self.cfg.trainer.total_steps)
        if "evaluator" in self.plan.slots:
            from rl.eval.actor import Evaluator

            self.evaluator = Evaluator(self.cfg, self.plan)
        state = self._maybe_resume()
        self.tracker = Tracker(
            self.run_dir, self.cfg.tracking, to_dict(self.cfg),
            run_id=(state.wandb_run_id or None) if state else None,
            resume_step=self.global_step if state else None,
            default_name=self.cfg.trainer.experiment_name,
        )
        if state:
            # The rollout engine starts from the initial weights: sync the resumed actor into it.
            self._sync_weights()

    def _sync_weights(self) -> int:
        """Actor -> rollout engines, bucketed; returns the bytes sent."""
        sent, _ = self.groups.actor.push_weights(
            self.groups.rollout.workers, self.cfg.rollout.weight_sync_bucket_mb,
            checkpoint_names=self.cfg.rollout.backend != "hf",
        )
        return sent

    def _maybe_resume(self) -> Optional[TrainerState]:
        path = self.ckpt.resolve(self.cfg.trainer.resume)
        if path is None:
            return None
        state = self.ckpt.load_trainer_state(path)
        self.groups.actor.call_all("load_checkpoint", str(path / MODEL_SUBDIR))
        self.loader.load_state_dict(state.extra["loader"])
        restore_rng_state(state.rng)
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

    def request_stop(self, *_: Any) -> None:
        """SIGINT/SIGTERM: finish the current step, save a checkpoint, exit cleanly."""
        self._stop_requested = True

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
                before_step = (self.loader.state_dict(), capture_rng_state())
                self._actor_touched = False
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
                self.groups.actor.call_all("export_hf", str(self.run_dir / "export"))
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
        cfg = self.cfg
        self.timer.reset()
        step_start = time.perf_counter()
        busy: dict[str, float] = {}
        sampling_metrics: dict[str, float] = {}
        pending = None
        if cfg.algorithm.filter_groups.enable:
            # Dynamic sampling: rounds of generate + score + filter; rewards are needed before encoding.
            batch, accumulator = self._sample_filtered_batch(busy)
            sampling_metrics = accumulator.metrics(self._group_multiple())
            if batch is None:
                return self._skipped_step_metrics(accumulator, sampling_metrics, busy, step_start)
        else:
            records = self.loader.next_batch()
            self.tracker.log_batch([str(r.get("id", "")) for r in records], self.global_step)
            # Scoring overlaps the rest of generation and the log-prob phases below.
            batch, pending = self._generate(records, busy, sleep_after=True)

        with self.timer.phase("encode"):
            encoded = batch.encode(self._processor)
            # One object-store copy per distinct group size; each rank fetches only its shard.
            shards = {n: [_put(s) for s in g.shard(encoded)] for n, g in self._policy_groups_by_size().items()}
        ref = self.groups.reference
        ref_futures = ref.compute_log_prob_async(shards[ref.world_size]) if ref else None
        old_futures = self.groups.actor.compute_log_prob_async(shards[self.groups.actor.world_size])

        if pending is not None:
            self._collect_rewards(batch, pending, busy)
        with self.timer.phase("old_log_prob"):
            old_parts, busy["old_log_prob"] = self.groups.actor.gather(old_futures)
        ref_log_probs = None
        if ref_futures is not None:
            with self.timer.phase("ref"):
                ref_parts, busy["ref"] = self.groups.reference.gather(ref_futures)
            ref_log_probs = torch.cat(ref_parts)
        old_log_probs = torch.cat(old_parts)

        with self.timer.phase("adv"):
            advantages, _ = compute_advantages(
                torch.as_tensor(batch.scores, dtype=torch.float32), encoded.response_mask,
                np.asarray(batch.group_index), cfg.algorithm,
            )
        self._actor_touched = True   # from here on a failure may leave the actor between two steps
        with self.timer.phase("update_actor"):
            actor_metrics = self._update_actor(encoded, advantages, old_log_probs, ref_log_probs)
        with self.timer.phase("update_weights"):
            sent_bytes = self._sync_weights()

        step_time = time.perf_counter() - step_start
        metrics: dict[str, float] = {"training/global_step": self.global_step,
                                     "training/epoch": self.loader.state.epoch}
        metrics.update(reward_metrics(batch, encoded, advantages, max_response_length=cfg.rollout.max_response_length))
        metrics.update(sampling_metrics)
        metrics.update(actor_metrics)
        metrics.update(self.timer.metrics())
        metrics["timing_s/step"] = step_time
        metrics.update({f"timing_busy_s/{k}": v for k, v in busy.items()})
        total_tokens = int(encoded.attention_mask.sum())
        metrics["perf/total_num_tokens"] = total_tokens
        metrics["perf/time_per_step"] = step_time
        metrics["perf/throughput"] = total_tokens / step_time / max(1, self.groups.actor.world_size)
        metrics["perf/weight_sync_mb"] = sent_bytes / 2**20
        if self._due(cfg.trainer.log_samples_freq):
            self.tracker.log_samples(batch.sample_rows(cfg.trainer.log_samples_count), self.global_step)
        return metrics

    # ------------------------------------------------------------ generation
    def _generate(self, records: list[dict], busy: dict[str, float],
                  sleep_after: bool = False) -> tuple[RolloutBatch, Any]:
        """Generate ``rollout.n`` responses per record and start scoring them.

        Asynchronous generation: every group goes to the reward pool as soon as the rollout
        workers stream it back. Returns the (unscored) batch and the reward pool's pending
        scores for :meth:`_collect_rewards`; adds the generation seconds to ``busy["gen"]``.
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

    def _collect_rewards(self, batch: RolloutBatch, pending: Any, busy: dict[str, float]) -> None:
        """Wait for the batch's scores and store them in it; adds to ``busy["reward"]``."""
        with self.timer.phase("reward"):
            scored = self.groups.reward.collect(pending)
        busy["reward"] = busy.get("reward", 0.0) + pending.busy_s / max(1, len(self.groups.reward.workers))
        batch.set_rewards(scored, failed=pending.failures, restarts=pending.restarts)

    def _generate_and_score(self, records: list[dict], busy: dict[str, float]) -> RolloutBatch:
        """One generation round of dynamic sampling: the scored batch of ``records``."""
        batch, pending = self._generate(records, busy)
        self._collect_rewards(batch, pending, busy)
        return batch

    def _sample_filtered_batch(self, busy: dict[str, float]) -> tuple[Optional[RolloutBatch], GroupAccumulator]:
        """Dynamic sampling: draw prompt batches, generate, score and filter until
        ``trainer.train_batch_size`` groups are kept or ``max_num_gen_batches`` rounds are used.

        Returns the training batch (the first kept groups; fewer than the batch size with a
        warning when the round limit was hit; ``None`` when no group was kept) and the
        accumulator with every round (for the ``batch/*`` metrics). Logs every prompt drawn to
        ``batches.jsonl`` with the kept ones."""
        fg = self.cfg.algorithm.filter_groups
        target = self.cfg.trainer.train_batch_size
        accumulator = GroupAccumulator.from_config(fg, target)
        while accumulator.wants_more():
            accumulator.add(self._generate_and_score(self.loader.next_batch(), busy))
        multiple = self._group_multiple()
        batch = accumulator.kept_batch(multiple)
        kept_ids = [str(r.get("id", "")) for r in batch.records] if batch is not None else []
        self.tracker.log_batch(accumulator.record_ids(), self.global_step, kept_ids=kept_ids)
        if accumulator.num_trained(multiple) < target:
            log.warning(
                "step %d: dynamic sampling kept %d of %d groups after %d generation rounds "
                "(algorithm.filter_groups.max_num_gen_batches=%d); %s", self.global_step, accumulator.num_kept,
                target, accumulator.rounds, fg.max_num_gen_batches,
                f"training on {len(batch.records)} groups" if batch is not None
                else "skipping the actor update and weight sync of this step")
        if batch is not None:
            self._sleep_rollout()
        return batch, accumulator

    def _group_multiple(self) -> int:
        """Groups per training batch must be a multiple of this for equal rank shards."""
        if self.groups is None:
            return 1
        sizes = [g.world_size for g in (self.groups.actor, self.groups.reference) if g is not None]
        return group_multiple(self.cfg.rollout.n, sizes)

    def _skipped_step_metrics(self, accumulator: GroupAccumulator, sampling_metrics: dict[str, float],
                              busy: dict[str, float], step_start: float) -> dict[str, float]:
        """Metrics of a step whose dynamic sampling kept no group (no update, no weight sync)."""
        generated = accumulator.all_generated()
        step_time = time.perf_counter() - step_start
        metrics: dict[str, float] = {"training/global_step": self.global_step,
                                     "training/epoch": self.loader.state.epoch}
        metrics.update(sampling_metrics)
        metrics["reward/failed"] = float(generated.reward_failures)
        metrics["reward/worker_restarts"] = float(generated.reward_restarts)
        metrics.update(self.timer.metrics())
        metrics["timing_s/step"] = step_time
        metrics.update({f"timing_busy_s/{k}": v for k, v in busy.items()})
        if self._due(self.cfg.trainer.log_samples_freq):
            self.tracker.log_samples(generated.sample_rows(self.cfg.trainer.log_samples_count), self.global_step)
        return metrics

    def _policy_groups_by_size(self) -> dict[int, Any]:
        groups = [g for g in (self.groups.actor, self.groups.reference) if g is not None]
        return {g.world_size: g for g in groups}

    def _update_actor(self, encoded, advantages, old_log_probs, ref_log_probs) -> dict[str, float]:
        group = self.groups.actor
        num_tokens = int(encoded.response_mask.sum())
        num_seqs = len(encoded)
        enc_shards = group.shard(encoded)
        adv_shards = group.shard(advantages)
        old_shards = group.shard(old_log_probs)
        ref_shards = group.shard(ref_log_probs) if ref_log_probs is not None else [None] * group.world_size
        futures = group.call_async(
            "update_policy",
            [(e, a, o, r, num_tokens, num_seqs) for e, a, o, r in zip(enc_shards, adv_shards, old_shards, ref_shards)],
        )
        results, _ = group.gather(futures)
        return dict(results[0])

    # ------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Greedy rollouts on held-out prompts, scored with the training reward (``val/...``)."""
        if not self.val_records:
            return {}
        records = self.val_records[: self.cfg.trainer.val_num_prompts]
        outputs, _ = self.groups.rollout.generate(records, self.val_sampling)
        batch = flatten_rollout(records, outputs, n=self.cfg.rollout.val_n)
        pending = self.groups.reward.submit(batch.reward_groups())
        batch.set_rewards(self.groups.reward.collect(pending), failed=pending.failures, restarts=pending.restarts)
        out = {"val/score/mean": float(np.mean(batch.scores))}
        for name, values in batch.components.items():
            out[f"val/reward/{name}"] = float(np.mean(values))
        # Collapse check: distinct answers per query, well-formed box answers, response length in tokens.
        grounding = [is_grounding_record(batch.records[g]) for g in batch.group_index]
        out.update(validation_metrics(batch.response_texts, batch.group_index, grounding))
        out["val/response_length/mean"] = float(np.mean([len(ids) for ids in batch.response_ids]))
        self.tracker.log_samples(batch.sample_rows(self.cfg.trainer.log_samples_count), self.global_step, table="val_samples")
        return out

    def evaluate_videos(self) -> dict[str, float]:
        """The whole video pipeline (sampler -> grounding -> segmenter -> propagation -> J&F) on the
        evaluator actor with the current policy: ``val/J``, ``val/F``, ``val/J&F``, ... plus overlays.

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
            paths = self.groups.actor.call_all("export_hf", str(export))
            result = self.evaluator.evaluate(checkpoint_dir=str(next(p for p in paths if p)), step=self.global_step)
        finally:
            shutil.rmtree(export, ignore_errors=True)
            if export.parent.is_dir() and not any(export.parent.iterdir()):
                export.parent.rmdir()
        images = result.get("images") or []
        if images and hasattr(self.tracker, "log_images"):
            self.tracker.log_images("val/overlays", images, self.global_step)
        return {**result["metrics"], "val/eval_failures": float(self.eval_failures)}

    # ------------------------------------------------------------ checkpoints
    def _save_after_failure(self, loader_state: dict[str, Any], rng_state: Any) -> None:
        """A step failed (a dead rollout worker, an engine error, ...): keep the progress of the
        steps before it. If the actor was not touched yet, rewind the data position and RNG to
        the start of the failed step and checkpoint the last completed step, so that re-running
        the same command resumes exactly there; otherwise say which checkpoint a resume uses."""
        failed = self.global_step
        self.global_step -= 1
        saved = self.ckpt.complete_steps()
        saved_step = saved[-1] if saved else 0
        if self._actor_touched:
            log.error("step %d failed during the actor update or weight sync; resuming continues from the "
                      "checkpoint of step %d", failed, saved_step)
            return
        if self.global_step <= saved_step:
            return
        self.loader.load_state_dict(loader_state)
        restore_rng_state(rng_state)
        try:
            path = self.save_checkpoint()
        except Exception:  # noqa: BLE001 - the actor may be gone too; the original error is re-raised
            log.exception("step %d failed and the checkpoint of step %d could not be saved either; resuming "
                          "continues from step %d", failed, self.global_step, saved_step)
            return
        log.error("step %d failed; saved the completed step %d to %s (re-run the same command to resume)",
                  failed, self.global_step, path)

    def save_checkpoint(self) -> Path:
        """Model + optimizer (DCP, written by the actor ranks), data position, RNG, W&B run id."""
        step = self.global_step
        self.ckpt.begin(step)
        self.groups.actor.call_all("save_checkpoint", str(self.ckpt.model_dir(step)))
        state = TrainerState(
            step=step, epoch=self.loader.state.epoch, data_position=self.loader.state.cursor,
            data_seed=self.loader.seed, rng=capture_rng_state(),
            wandb_run_id=(self.tracker.run_id or "") if self.tracker else "",
            extra={"loader": self.loader.state_dict()},
        )
        return self.ckpt.finalize(step, state)


def _put(value: Any) -> Any:
    import ray

    return ray.put(value)
