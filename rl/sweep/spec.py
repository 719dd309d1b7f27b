"""Sweep specifications (``configs/sweeps/*.yaml``): what to vary, how to search, how to rank.

A sweep file names a recipe (and optionally a cluster), fixed overrides for every
trial, and ``parameters``: dotted config keys with either a list of ``values``
or a ``distribution`` with bounds::

    name: reward_grid
    recipe: quickstart
    search: grid                  # grid | random | bayesopt | optuna
    parameters:
      reward.params.visionreasoner.iou_threshold: {values: [0.3, 0.5]}
      actor.kl_loss_coef: {distribution: loguniform, min: 1.0e-3, max: 1.0e-1}
    overrides: {trainer.total_steps: 3}
    metric: val/score/mean        # ranks the trials
    mode: max
    scheduler: {type: asha, metric: critic/score/mean, grace_period: 2}

``grid`` expands every ``values`` list into a full grid (distributions are sampled
once per grid point, ``num_samples`` repeats the grid); ``random`` draws
``num_samples`` trials (``values`` become a uniform choice); ``bayesopt``
(package ``bayesian-optimization``) and ``optuna`` (package ``optuna``) propose
trials from the results so far and are imported only when asked for.
Every parameter key is checked against the config schema at load time.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rl.config import CONFIG_DIR, Config, ConfigError, apply_overrides, load_config

SEARCHES = ("grid", "random", "bayesopt", "optuna")
DISTRIBUTIONS = ("uniform", "loguniform", "quniform", "randint", "qrandint", "lograndint", "randn")
SCHEDULERS = ("none", "asha")
SCOPES = ("last", "best")


class SweepError(ConfigError):
    """A problem in a sweep file or its command-line overrides (names the key)."""


@dataclass
class Parameter:
    """One swept config key: a list of ``values`` or a ``distribution`` between ``min`` and ``max``."""

    key: str
    values: Optional[list[Any]] = None
    distribution: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    q: Optional[float] = None
    mean: float = 0.0
    sd: float = 1.0

    def check(self) -> None:
        where = f"sweep parameter {self.key!r}"
        if (self.values is None) == (not self.distribution):
            raise SweepError(f"{where}: give exactly one of 'values' or 'distribution'")
        if self.values is not None:
            if not isinstance(self.values, list) or not self.values:
                raise SweepError(f"{where}: 'values' must be a non-empty list, got {self.values!r}")
            return
        if self.distribution not in DISTRIBUTIONS:
            raise SweepError(f"{where}: distribution {self.distribution!r}; expected one of {list(DISTRIBUTIONS)}")
        if self.distribution == "randn":
            return
        if self.min is None or self.max is None or not self.min < self.max:
            raise SweepError(f"{where}: {self.distribution} needs min < max, got min={self.min} max={self.max}")
        if self.distribution.startswith("log") and self.min <= 0:
            raise SweepError(f"{where}: {self.distribution} needs min > 0, got {self.min}")
        if self.distribution.startswith("q") and not self.q:
            raise SweepError(f"{where}: {self.distribution} needs q > 0")

    def example(self) -> Any:
        """A representative value (the first value, or the middle of the range) for checks and dry runs."""
        if self.values is not None:
            return self.values[0]
        if self.distribution == "randn":
            return self.mean
        lo, hi = float(self.min), float(self.max)
        mid = math.sqrt(lo * hi) if self.distribution.startswith("log") else (lo + hi) / 2
        return int(round(mid)) if "randint" in self.distribution else mid

    def tune_domain(self, grid: bool) -> Any:
        """The Ray Tune search-space entry of this parameter."""
        from ray import tune

        if self.values is not None:
            return tune.grid_search(list(self.values)) if grid else tune.choice(list(self.values))
        d, lo, hi = self.distribution, self.min, self.max
        if d == "uniform":
            return tune.uniform(lo, hi)
        if d == "loguniform":
            return tune.loguniform(lo, hi)
        if d == "quniform":
            return tune.quniform(lo, hi, self.q)
        if d == "randint":
            return tune.randint(int(lo), int(hi))
        if d == "qrandint":
            return tune.qrandint(int(lo), int(hi), int(self.q))
        if d == "lograndint":
            return tune.lograndint(int(lo), int(hi))
        return tune.randn(self.mean, self.sd)


@dataclass
class SchedulerSpec:
    """Early stopping: ``asha`` (Ray Tune's ASHAScheduler) on ``metric``, or ``none``."""

    type: str = "none"
    # Metric reported every step (default: the sweep's ranking metric).
    metric: str = ""
    mode: str = ""
    # Steps every trial runs before it may be stopped.
    grace_period: int = 1
    reduction_factor: float = 2.0
    # Longest trial in steps (0: trainer.total_steps).
    max_t: int = 0


@dataclass
class SweepSpec:
    """A parsed sweep file (see the module docstring)."""

    name: str
    recipe: str = "quickstart"
    cluster: str = ""
    search: str = "grid"
    parameters: list[Parameter] = field(default_factory=list)
    # Fixed dotted overrides for every trial (before the swept values).
    overrides: dict[str, Any] = field(default_factory=dict)
    # grid: repeats of the grid; random/bayesopt/optuna: number of trials.
    num_samples: int = 1
    # Trials running at once (each holds its own placement group; fewer run when the cluster is full).
    max_concurrent_trials: int = 1
    # Ranking metric (a metrics.jsonl key), its direction and which value counts: last | best.
    metric: str = "val/score/mean"
    mode: str = "max"
    scope: str = "last"
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    # Sweep directory (trials, Tune state, results.csv); default runs/sweeps/<name>.
    dir: str = ""
    # Logical CPUs of the local Ray instance the sweep starts (null: cluster.num_cpus).
    num_cpus: Optional[int] = None
    # CPUs of each trial's driver bundle (bundle 0 of the trial's placement group).
    trial_driver_cpus: float = 1.0
    # Train the SFT cold start once in <dir>/base and start every trial from it (when model.path is empty).
    share_sft: bool = True
    # Random seed of the search algorithm.
    seed: int = 0

    # ------------------------------------------------------------- derived
    @property
    def sweep_dir(self) -> Path:
        return Path(self.dir or f"runs/sweeps/{self.name}")

    def base_overrides(self) -> list[str]:
        """``recipe=``/``cluster=`` plus the fixed overrides, as ``key=value`` strings."""
        items = [f"recipe={self.recipe}"] + ([f"cluster={self.cluster}"] if self.cluster else [])
        return items + [format_override(k, v) for k, v in self.overrides.items()]

    def param_overrides(self, values: dict[str, Any]) -> list[str]:
        return [format_override(p.key, values[p.key]) for p in self.parameters if p.key in values]

    def param_space(self) -> dict[str, Any]:
        """Ray Tune ``param_space`` (flat: dotted config key -> domain)."""
        return {p.key: p.tune_domain(grid=self.search == "grid") for p in self.parameters}

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point of the ``values`` parameters, in Ray Tune's order (the first key varies fastest);
        distributions are shown by a representative value."""
        keys = [p.key for p in self.parameters]
        choices = [p.values if p.values is not None else [p.example()] for p in self.parameters]
        return [dict(zip(keys, reversed(combo))) for combo in itertools.product(*reversed(choices))]

    def num_trials(self) -> int:
        if self.search == "grid":
            return len(self.grid()) * self.num_samples
        return self.num_samples

    def scheduler_metric(self) -> tuple[str, str]:
        return self.scheduler.metric or self.metric, self.scheduler.mode or self.mode

    def base_config(self, extra: Sequence[str] = ()) -> Config:
        """The config every trial starts from (recipe, cluster, fixed overrides, ``extra``)."""
        return load_config([*self.base_overrides(), *extra])


def format_override(key: str, value: Any) -> str:
    """``key=value`` in the syntax ``load_config`` parses back to the same value."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        text = json.dumps(value)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str) and (value == "" or any(c in value for c in ",:[]{}'\"=") or value != value.strip()):
        text = json.dumps(value)
    else:
        text = str(value)
    return f"{key}={text}"


# ----------------------------------------------------------------- loading


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _parse_parameters(raw: Any, source: str) -> list[Parameter]:
    if not isinstance(raw, dict) or not raw:
        raise SweepError(f"{source}: 'parameters' must map config keys to {{values: [...]}} or {{distribution: ...}}")
    params = []
    for key, body in raw.items():
        if isinstance(body, list):
            body = {"values": body}
        if not isinstance(body, dict):
            raise SweepError(f"{source}: sweep parameter {key!r} must be a mapping or a list of values")
        unknown = set(body) - (_field_names(Parameter) - {"key"})
        if unknown:
            raise SweepError(f"{source}: sweep parameter {key!r} has unknown field(s) {sorted(unknown)}")
        param = Parameter(key=str(key), **body)
        param.check()
        params.append(param)
    return params


def parse_spec(data: dict[str, Any], source: str = "sweep") -> SweepSpec:
    """A :class:`SweepSpec` from a plain dict; unknown fields and bad values raise :class:`SweepError`."""
    unknown = set(data) - _field_names(SweepSpec)
    if unknown:
        raise SweepError(f"{source}: unknown sweep field(s) {sorted(unknown)}; known: {sorted(_field_names(SweepSpec))}")
    if not data.get("name"):
        raise SweepError(f"{source}: a sweep needs a 'name' (its W&B group and directory)")
    body = dict(data)
    body["parameters"] = _parse_parameters(data.get("parameters"), source)
    sched = data.get("scheduler") or {}
    if not isinstance(sched, dict) or set(sched) - _field_names(SchedulerSpec):
        raise SweepError(f"{source}: 'scheduler' fields are {sorted(_field_names(SchedulerSpec))}, got {sched!r}")
    body["scheduler"] = SchedulerSpec(**sched)
    body["overrides"] = dict(data.get("overrides") or {})
    try:
        spec = SweepSpec(**body)
    except TypeError as exc:
        raise SweepError(f"{source}: {exc}") from None
    _check(spec, source)
    return spec


def _check(spec: SweepSpec, source: str) -> None:
    if spec.search not in SEARCHES:
        raise SweepError(f"{source}: search {spec.search!r}; expected one of {list(SEARCHES)}")
    if spec.mode not in ("max", "min"):
        raise SweepError(f"{source}: mode {spec.mode!r}; expected max or min")
    if spec.scope not in SCOPES:
        raise SweepError(f"{source}: scope {spec.scope!r}; expected one of {list(SCOPES)}")
    if spec.scheduler.type not in SCHEDULERS:
        raise SweepError(f"{source}: scheduler type {spec.scheduler.type!r}; expected one of {list(SCHEDULERS)}")
    if spec.scheduler.mode and spec.scheduler.mode not in ("max", "min"):
        raise SweepError(f"{source}: scheduler mode {spec.scheduler.mode!r}; expected max or min")
    for name in ("num_samples", "max_concurrent_trials"):
        if int(getattr(spec, name)) < 1:
            raise SweepError(f"{source}: {name} must be >= 1, got {getattr(spec, name)}")
    if spec.search in ("bayesopt", "optuna") and not spec.metric:
        raise SweepError(f"{source}: search {spec.search!r} needs a 'metric' to optimise")
    if spec.search == "bayesopt":
        for p in spec.parameters:
            if p.distribution not in ("uniform", "loguniform", "quniform") or p.values is not None:
                raise SweepError(f"{source}: bayesopt searches continuous ranges only; parameter {p.key!r} is not "
                                 "a uniform/loguniform/quniform distribution")
    keys = [p.key for p in spec.parameters]
    if len(set(keys)) != len(keys):
        raise SweepError(f"{source}: a parameter is listed twice in {keys}")
    clash = set(keys) & set(spec.overrides)
    if clash:
        raise SweepError(f"{source}: {sorted(clash)} both swept and fixed in 'overrides'")
    # Every key must exist in the config schema and accept every listed value / the range's example.
    base = spec.base_config()
    for p in spec.parameters:
        candidates = p.values if p.values is not None else [p.example()]
        for value in candidates:
            try:
                apply_overrides(base, [format_override(p.key, value)], source="the sweep")
            except (OmegaConfBaseException, ConfigError) as exc:
                detail = str(exc).splitlines()[0]
                raise SweepError(f"{source}: sweep parameter {p.key!r} = {value!r}: {detail}") from None


def _apply_cli(data: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """``sweep.<field>=v`` sets a sweep field, ``recipe=``/``cluster=`` the trial's files, the rest add overrides."""
    data = json.loads(json.dumps(data))
    overrides = dict(data.get("overrides") or {})
    for item in items:
        if "=" not in item:
            raise SweepError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        try:
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={text}"]))["v"]
        except OmegaConfBaseException as exc:
            raise SweepError(f"cannot parse override {item!r}: {exc}") from None
        if key.startswith("sweep."):
            path = key[len("sweep."):].split(".")
            target = data
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
        elif key in ("recipe", "cluster"):
            data[key] = value
        else:
            overrides[key] = value
    data["overrides"] = overrides
    return data


def load_sweep(path: str | Path, cli: Sequence[str] = ()) -> SweepSpec:
    """Read ``path`` (or ``configs/sweeps/<path>.yaml``), apply command-line items, validate."""
    p = Path(path)
    if not p.is_file():
        named = CONFIG_DIR / "sweeps" / f"{path}.yaml"
        if not named.is_file():
            known = sorted(x.stem for x in (CONFIG_DIR / "sweeps").glob("*.yaml"))
            raise SweepError(f"sweep file not found: {path} (known sweeps: {known})")
        p = named
    try:
        data = OmegaConf.to_container(OmegaConf.load(p), resolve=True)
    except OmegaConfBaseException as exc:
        raise SweepError(f"cannot read sweep file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise SweepError(f"sweep file {p} must hold a mapping")
    return parse_spec(_apply_cli(data, cli), source=str(p))
