"""The run configuration: the top-level :class:`Config`, YAML recipes and ``key=value`` overrides.

Resolution order (later wins)::

    dataclass defaults  (== configs/default.yaml, checked by a test)
    configs/recipes/<recipe>.yaml          (``recipe=NAME``; after the recipe it ``extends:``)
    configs/profiles/<profile>.yaml        (``profile=NAME``, e.g. ``profile=cpu``)
    configs/cluster/<cluster>.yaml         (``cluster=NAME``, into ``cluster.*``)
    command-line ``key=value`` overrides   (verl / hydra style dotted keys)

A profile adapts any recipe to a kind of machine without editing it: ``profile=cpu`` turns a
GPU recipe into a laptop rehearsal of the same pipeline (same task, reward, sampler and
propagator; a tiny model, small sizes, random SAM2 / XMem weights). It is merged after the
recipe, so it wins over the recipe's keys, and before the cluster file and the command line,
which win over it. A recipe or profile names its default cluster file with a top-level
``cluster: NAME`` (the profile's beats the recipe's; ``cluster=NAME`` on the command line beats
both). Values may interpolate other keys, e.g. ``run_dir: runs/${recipe}_cpu`` (``recipe`` and
``profile`` hold the names given on the command line).

Each section's schema lives next to the code that reads it (``data.config``,
``rewards.config``, ``rl.models.config``, ``rl.rollout.config``, ``rl.workers.config``,
``rl.algos_config``, ``rl.trainer_config``, ``rl.placement``, ``rl.eval.config``); this
module nests them and re-exports their classes (``from rl.config import ActorConfig`` keeps
working; new code imports from the owners).

Everything is checked once, by :func:`load_config`, before anything starts: unknown keys and
values of the wrong type (OmegaConf), then every field's ``Literal`` choices and
``Annotated`` bounds and every section's ``validate()`` (:mod:`rl.schema`), then the rules
spanning sections (:meth:`Config.validate`). All problems are reported together in one
:class:`ConfigError`, each with its full dotted key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data.annotate.config import AnnotateConfig
from data.config import DataConfig, SyntheticConfig
from rewards.config import RewardConfig
from rewards.vision.config import SegmenterConfig
from rl.algos_config import AlgorithmConfig, FilterGroupsConfig
from rl.eval.config import EvalConfig
from rl.models.config import LoraConfig, ModelConfig, TinyModelConfig
from rl.placement import ClusterConfig, PoolConfig
from rl.rollout.config import RolloutConfig
from rl.schema import ConfigError, from_plain, omega_class, omega_node, problems
from rl.trainer_config import SFTConfig, TrackingConfig, TrainerConfig
from rl.workers.config import ActorConfig, FSDPConfig, OptimConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class Config:
    """The whole run configuration."""

    # Name of the recipe the config was built from (set by `recipe=NAME`).
    recipe: str = ""
    # Name of the profile merged over the recipe (set by `profile=NAME`, configs/profiles/NAME.yaml).
    profile: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)

    def validate(self) -> Iterator[tuple[str, str]]:
        """Rules that span sections (keys are full dotted keys)."""
        for role in ("actor", "rollout", "reward"):
            if getattr(self.cluster, role).num_workers < 1:
                yield f"cluster.{role}.num_workers", f"must be >= 1, got {getattr(self.cluster, role).num_workers}"
        if self.actor.use_kl_loss and self.actor.kl_loss_coef > 0 and self.cluster.reference.num_workers < 1 \
                and self.actor.lora.rank == 0:   # LoRA: the actor computes the reference (adapters disabled)
            yield "cluster.reference.num_workers", "must be >= 1 when the KL loss is on (actor.use_kl_loss and " \
                                                   "actor.kl_loss_coef > 0) without LoRA (actor.lora.rank = 0)"
        if self.eval.freq > 0 and self.cluster.evaluator.num_workers < 1:
            yield "cluster.evaluator.num_workers", "must be >= 1 when eval.freq > 0"
        if self.actor.ppo_mini_batch_size >= 1 and self.trainer.train_batch_size % self.actor.ppo_mini_batch_size:
            yield "actor.ppo_mini_batch_size", (f"must divide trainer.train_batch_size ({self.actor.ppo_mini_batch_size} "
                                                f"vs {self.trainer.train_batch_size})")
        sequences = self.actor.ppo_mini_batch_size * self.rollout.n
        if self.cluster.actor.num_workers >= 1 and sequences % self.cluster.actor.num_workers:
            yield "cluster.actor.num_workers", (
                f"= {self.cluster.actor.num_workers}: actor.ppo_mini_batch_size x rollout.n = {sequences} is not "
                "divisible by it (every actor rank needs the same number of sequences)")
        if self.trainer.off_policy_steps and self.algorithm.filter_groups.enable:
            yield "trainer.off_policy_steps", "one-step off-policy generation does not support dynamic sampling " \
                                              "(algorithm.filter_groups.enable=true): set one of them off"
        if self.trainer.off_policy_steps and self.cluster.rollout.colocate_with:
            yield "trainer.off_policy_steps", "needs rollout engines on devices of their own: the rollout " \
                                              f"shares the {self.cluster.rollout.colocate_with}'s devices " \
                                              "(cluster.rollout.colocate_with)"
        yield from _filter_groups_metric(self)
        yield from _reward_fits_task(self)
        yield from _placement_plan(self)


def _filter_groups_metric(cfg: Config) -> Iterator[tuple[str, str]]:
    """With dynamic sampling on, ``algorithm.filter_groups.metric`` must be "score" or a component of the reward."""
    fg = cfg.algorithm.filter_groups
    if not fg.enable or fg.metric == "score" or cfg.reward.function:
        return  # a user reward's components are known once it has scored (checked on the first batch)
    from rewards.registry import build_params, get_reward

    try:
        reward = get_reward(cfg.reward.name)
    except KeyError:  # reported under reward.name
        return
    params = getattr(cfg.reward.params, cfg.reward.name, None)
    names = list(reward.terms(build_params(cfg.reward.name, params)))
    names += [reward.multiplier] if reward.multiplier else []
    if fg.metric not in names:
        yield "algorithm.filter_groups.metric", (f"= {fg.metric!r}; reward {cfg.reward.name!r} has components "
                                                 f"{names} (or use \"score\", the total)")


def _reward_fits_task(cfg: Config) -> Iterator[tuple[str, str]]:
    """A built-in reward scores only the sample tasks it declares (``data.task``)."""
    if cfg.reward.function:
        return
    from rewards.registry import get_reward, task_rewards

    try:
        reward = get_reward(cfg.reward.name)
    except KeyError:  # reported under reward.name
        return
    if reward.tasks and cfg.data.task not in reward.tasks:
        yield "reward.name", (f"= {cfg.reward.name!r} does not fit data.task={cfg.data.task!r} (it scores "
                              f"{list(reward.tasks)}); rewards for {cfg.data.task!r}: {list(task_rewards(cfg.data.task))}")


def _placement_plan(cfg: Config) -> Iterator[tuple[str, str]]:
    """The roles' pools must form a plan (colocation targets exist, bundles hold resources)."""
    from rl.placement import PlacementPlan, roles_for

    try:
        PlacementPlan(cfg.cluster, roles_for(cfg))
    except ConfigError as exc:
        yield "", str(exc)


def validate(cfg: Config) -> Config:
    """Raise one :class:`ConfigError` listing every problem of ``cfg`` (full dotted keys); returns ``cfg``."""
    found = problems(cfg)
    if found:
        lines = [p[len("config "):] if p.startswith("config ") else p for p in found]
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines))
    return cfg


# --------------------------------------------------------------------- loading


def _error_key(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    return str(key) if key else "?"


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        kind = "unknown config key" if "not in" in msg or "Key '" in msg and "not" in msg else "bad config value"
        raise ConfigError(f"{kind} '{_error_key(exc)}' in {source}: {msg}") from None


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return OmegaConf.load(path)


def named_yaml(kind: str, name: str) -> Path:
    """``configs/<kind>/<name>.yaml``, or ``name`` itself when it is a path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = CONFIG_DIR / kind / f"{name}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))
        raise ConfigError(f"unknown {kind[:-1] if kind.endswith('s') else kind} {name!r}; known: {known}")
    return candidate


def _recipe_chain(name: str) -> list[tuple[Path, DictConfig]]:
    """The recipe and the recipes it ``extends:`` (``extends: quickstart``), base first, so that a
    recipe's keys win over its base's."""
    chain: list[tuple[Path, DictConfig]] = []
    seen: list[str] = []
    while name:
        path = named_yaml("recipes", name)
        if str(path.resolve()) in seen:
            raise ConfigError(f"recipe {name!r} extends itself: {' -> '.join(seen + [str(path.resolve())])}")
        seen.append(str(path.resolve()))
        recipe_cfg = _read_yaml(path)
        base = recipe_cfg.pop("extends", "")
        if not isinstance(base, str):
            raise ConfigError(f"'extends' in {path} must name one recipe, got {base!r}")
        chain.append((path, recipe_cfg))
        name = base
    return chain[::-1]


def _strict(node: DictConfig) -> DictConfig:
    """Unknown keys are errors everywhere except in free-form mapping fields (``dict[str, Any]``, e.g.
    ``reward.function_kwargs``), which take any key."""
    OmegaConf.set_struct(node, True)

    def open_mappings(parent: DictConfig) -> None:
        for key in parent.keys():
            child = parent._get_node(key)
            if isinstance(child, DictConfig):
                if child._metadata.object_type is dict:
                    OmegaConf.set_struct(child, False)
                else:
                    open_mappings(child)

    open_mappings(node)
    return node


def _pop_cluster_name(node: DictConfig) -> str | None:
    """Remove and return a recipe's / profile's top-level ``cluster: NAME`` (a cluster file name)."""
    return node.pop("cluster") if isinstance(node.get("cluster"), str) else None


def _dotlist(items: Sequence[str]) -> DictConfig:
    from yaml import YAMLError

    try:
        return OmegaConf.from_dotlist(list(items))
    except (OmegaConfBaseException, YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot parse overrides {list(items)}: {first}") from None


def _to_config(node: DictConfig) -> Config:
    try:
        plain = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"bad config value '{_error_key(exc)}': {str(exc).splitlines()[0]}") from None
    return validate(from_plain(Config, plain))


def load_config(overrides: Sequence[str] = (), recipe: str | None = None) -> Config:
    """Resolve and validate a :class:`Config` from defaults, a recipe, a profile, a cluster file and
    ``key=value`` overrides (in this order, later wins; see the module docstring).

    ``overrides`` may contain ``recipe=NAME``, ``profile=NAME`` and ``cluster=NAME`` (names of files
    in ``configs/recipes`` / ``configs/profiles`` / ``configs/cluster``, or YAML paths); every other
    item is a dotted ``key=value`` override. Raises :class:`ConfigError` naming every bad key.
    """
    cluster = profile = None
    dotlist: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        if key == "recipe":
            recipe = value
        elif key == "profile":
            profile = value
        elif key == "cluster":
            cluster = value
        else:
            dotlist.append(f"{key}={value}")

    cfg = _strict(OmegaConf.structured(omega_class(Config)))
    default_cluster = None
    if recipe:
        for path, recipe_cfg in _recipe_chain(recipe):
            # A recipe names its default cluster file: `cluster: 1x8gpu` (the most derived one wins).
            default_cluster = _pop_cluster_name(recipe_cfg) or default_cluster
            cfg = _merge(cfg, recipe_cfg, str(path))
        cfg.recipe = Path(recipe).stem
    if profile:
        path = named_yaml("profiles", profile)
        profile_cfg = _read_yaml(path)
        default_cluster = _pop_cluster_name(profile_cfg) or default_cluster
        cfg = _merge(cfg, profile_cfg, str(path))
        cfg.profile = Path(profile).stem
    cluster = cluster or default_cluster
    if cluster:
        path = named_yaml("cluster", cluster)
        cfg = _merge(cfg, OmegaConf.create({"cluster": _read_yaml(path)}), str(path))
    cfg = _merge(cfg, _dotlist(dotlist), "command line")
    return _to_config(cfg)


def apply_overrides(cfg: Config, overrides: Sequence[str], source: str = "overrides") -> Config:
    """A validated copy of ``cfg`` with dotted ``key=value`` overrides applied (``cfg`` is unchanged)."""
    node = _strict(omega_node(cfg))
    return _to_config(_merge(node, _dotlist(overrides), source))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (for W&B config, checkpoints and printing)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(omega_node(cfg))


def parse_cli(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split argv into ``key=value`` overrides and ``--flags``."""
    overrides = [a for a in argv if "=" in a and not a.startswith("--")]
    flags = [a for a in argv if a not in overrides]
    return overrides, flags


__all__ = [
    "Config", "ConfigError", "CONFIG_DIR", "load_config", "apply_overrides", "validate", "to_dict", "to_yaml",
    "parse_cli", "named_yaml", "DataConfig", "SyntheticConfig", "RewardConfig", "SegmenterConfig", "ModelConfig",
    "TinyModelConfig", "LoraConfig", "RolloutConfig", "ActorConfig", "OptimConfig", "FSDPConfig", "AlgorithmConfig",
    "FilterGroupsConfig", "TrainerConfig", "TrackingConfig", "SFTConfig", "ClusterConfig", "PoolConfig", "EvalConfig",
    "MISSING",
]
