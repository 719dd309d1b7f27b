"""One GRPO training run from start to finish: the library's single entry point.

``launch.train`` (the command line) and every sweep trial (``rl.sweep.trial``) call
:func:`run_training`; callers hook in through :class:`RunCallback`::

    result = run_training(cfg, callbacks=[MyCallback()])
    raise SystemExit(result.exit_code)        # 0, or 130 / 143 after SIGINT / SIGTERM

The order: claim ``trainer.run_dir`` for this run (:func:`rl.run_dir.claim_run_dir`, which
refuses another run's directory) -> ``config.yaml`` -> the starting policy (``model.path`` or
the SFT cold start, :mod:`rl.cold_start`) -> the samples -> Ray -> trainer set-up (resuming
from the run's last checkpoint) -> :meth:`GRPOTrainer.fit` -> the before/after report ->
shutdown (Ray only when this call started it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from rewards.scorer import dry_run, probe_samples
from rl.cold_start import resolve_policy
from rl.config import Config
from rl.run_dir import claim_run_dir
from rl.run_setup import init_ray, prepare_data, save_resolved_config, shutdown_ray

if TYPE_CHECKING:
    from rl.driver import GRPOTrainer

log = logging.getLogger(__name__)

__all__ = ["RunCallback", "RunResult", "run_training", "write_final_report"]


class RunCallback:
    """Hooks of :func:`run_training`; override the ones you need (each default does nothing)."""

    def on_setup(self, trainer: "GRPOTrainer") -> None:
        """After the trainer's workers are up (and a resume is loaded), before the first step."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """After every step is logged (``metrics`` = that step's logged metrics)."""


@dataclass
class RunResult:
    """What a run ended with.

    Attributes:
        run_dir: the run directory; run_id: the run's id (``run.json``).
        step: the last completed step.
        metrics: the last step's metrics (the validation metrics with ``trainer.val_only``).
        stop_signal: the signal (SIGINT / SIGTERM) that stopped it before ``trainer.total_steps``
            (None: not interrupted); its checkpoint is saved, re-running resumes.
    """

    run_dir: str
    run_id: str
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    stop_signal: Optional[int] = None

    @property
    def interrupted(self) -> bool:
        return self.stop_signal is not None

    @property
    def exit_code(self) -> int:
        """Process exit status: 0, or 128 + the signal number of an interrupted run (the shell's convention)."""
        return 128 + self.stop_signal if self.stop_signal is not None else 0


def write_final_report(cfg: Config, trainer: "GRPOTrainer") -> None:
    """The before/after report of the run (:mod:`rl.report`: printed, ``report.md``, ``curves.png``, W&B).
    A report error is logged, never fatal: the training itself is done."""
    from rl.report import write_report

    try:
        write_report(cfg.trainer.run_dir, tracker=trainer.tracker, step=trainer.global_step)
    except Exception:  # noqa: BLE001 - the run and its checkpoints are complete either way
        log.exception("the end-of-training report failed (python -m rl.report %s re-creates it)", cfg.trainer.run_dir)


def _ray_is_up() -> bool:
    import ray

    return ray.is_initialized()


def run_training(cfg: Config, callbacks: Sequence[RunCallback] = (), report: bool = True) -> RunResult:
    """Run (or resume) the GRPO training ``cfg`` describes (paths already absolute, see
    :func:`rl.run_setup.absolutize`); ``report``: write the before/after report at the end of
    a completed training run.

    Raises:
        rl.run_dir.RunDirError: ``trainer.run_dir`` holds another run (nothing was started).
    """
    from rl.off_policy import trainer_class

    record = claim_run_dir(cfg)
    save_resolved_config(cfg)
    ray_was_up = _ray_is_up()
    trainer: Optional[Any] = None
    try:
        data = prepare_data(cfg)
        # Score one sample per task with the run's reward before the cold start or any actor:
        # a reward that does not fit the samples stops the run here, naming the reward, the
        # sample id and the key.
        dry_run(cfg.reward, probe_samples(data.train, data.val))
        policy = resolve_policy(cfg, data)
        init_ray(cfg)
        trainer = trainer_class(cfg)(cfg, policy, data.train, data.val)   # one-step off-policy or synchronous
        trainer.setup()
        for callback in callbacks:
            callback.on_setup(trainer)
            trainer.step_callbacks.append(callback.on_step)
        last = trainer.fit()
        interrupted = bool(getattr(trainer, "interrupted", False))
        result = RunResult(cfg.trainer.run_dir, record.run_id, trainer.global_step, last,
                           getattr(trainer, "stop_signal", None) if interrupted else None)
        if report and not cfg.trainer.val_only and not result.interrupted:
            write_final_report(cfg, trainer)
        return result
    finally:
        if trainer is not None:
            trainer.shutdown()
        if not ray_was_up:
            shutdown_ray()
