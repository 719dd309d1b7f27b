"""Evaluation: metrics (:mod:`rl.eval.metrics`), scoring of prediction folders
(:mod:`rl.eval.scoring`), and the inference pipeline pieces (sampler, segment,
propagate, ``xmem``). Import the submodules directly; this package imports nothing.
"""
