"""Run a sweep's trials with Ray Tune: search algorithm, early stopping, per-trial resources.

Needs a connected Ray (``ray.init``). Every trial is :func:`rl.sweep.trial.train_trial`
holding a placement group sized by its own placement plan; up to
``max_concurrent_trials`` run at once when the cluster has room for them.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Optional

from rl.sweep.spec import SweepError, SweepSpec
from rl.sweep.trial import TrialContext, train_trial, trial_index, trial_name

log = logging.getLogger(__name__)

_OPTIONAL = {"bayesopt": ("bayes_opt", "bayesian-optimization"), "optuna": ("optuna", "optuna")}


def build_search(spec: SweepSpec) -> Optional[Any]:
    """Tune search algorithm of ``spec.search`` (grid/random: Tune's basic variant generator)."""
    if spec.search in ("grid", "random"):
        from ray.tune.search import BasicVariantGenerator

        # Tune ignores TuneConfig.max_concurrent_trials for a generator instance: give it here.
        return BasicVariantGenerator(random_state=spec.seed, max_concurrent=spec.max_concurrent_trials)
    module, package = _OPTIONAL[spec.search]
    if importlib.util.find_spec(module) is None:
        raise SweepError(
            f"sweep search {spec.search!r} needs the optional package {package!r}, which is not installed "
            f"(pip install {package}); or use search: random"
        )
    if spec.search == "bayesopt":
        from ray.tune.search.bayesopt import BayesOptSearch

        return BayesOptSearch(metric=spec.metric, mode=spec.mode, random_state=spec.seed)
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(metric=spec.metric, mode=spec.mode, seed=spec.seed)


def build_scheduler(spec: SweepSpec, total_steps: int) -> Optional[Any]:
    """ASHA early stopping on the scheduler metric (one Tune iteration = one training step), or None."""
    if spec.scheduler.type == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    metric, mode = spec.scheduler_metric()
    return ASHAScheduler(time_attr="training_iteration", metric=metric, mode=mode,
                         max_t=spec.scheduler.max_t or total_steps, grace_period=spec.scheduler.grace_period,
                         reduction_factor=spec.scheduler.reduction_factor)


def _name_creator(context: TrialContext):
    def name(trial: Any) -> str:
        return trial_name(context.spec.name, trial_index(trial.trial_id), context.params_of(trial.config))

    return name


def run_sweep(context: TrialContext, total_steps: int) -> Any:
    """Run every trial; returns Tune's ``ResultGrid`` (trials that failed are in it with their error)."""
    from ray import tune

    spec = context.spec
    trainable = tune.with_resources(tune.with_parameters(train_trial, context=context), resources=context.resources)
    names = _name_creator(context)
    tuner = tune.Tuner(
        trainable,
        param_space=spec.param_space(),
        tune_config=tune.TuneConfig(
            search_alg=build_search(spec),
            scheduler=build_scheduler(spec, total_steps),
            num_samples=spec.num_samples,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_name_creator=names,
            trial_dirname_creator=names,
        ),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(Path(context.sweep_dir).resolve()), verbose=1,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    return tuner.fit()


def tune_errors(results: Any) -> dict[str, str]:
    """Trial folder name -> first line of its error, for trials that failed."""
    errors = {}
    for result in results:
        if result.error is not None:
            text = str(result.error).strip().splitlines()
            errors[Path(result.path).name] = text[-1] if text else type(result.error).__name__
    return errors
