"""Reward / hyper-parameter sweeps on Ray Tune: spec files, one training run per trial, ranking."""

from rl.sweep.spec import Parameter, SchedulerSpec, SweepError, SweepSpec, format_override, load_sweep, parse_spec

__all__ = ["Parameter", "SchedulerSpec", "SweepError", "SweepSpec", "format_override", "load_sweep", "parse_spec"]
