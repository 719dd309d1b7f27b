"""Soft aggregation of independent per-object probabilities into one distribution (STM/XMem)."""

from __future__ import annotations

import torch

_PROB_EPS = 1e-7


def soft_aggregate(prob: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``K`` per-object foreground probabilities into a ``K + 1``-way distribution.

    prob: ``... x K x ...`` (objects along ``dim``) with values in [0, 1]. The background
    gets ``prod_k (1 - p_k)``; every entry ``q`` (clamped to ``[1e-7, 1 - 1e-7]``) becomes the
    logit ``log(q / (1 - q))`` and a softmax along ``dim`` normalises them.
    Returns (logits, probabilities), each ``... x (K + 1) x ...`` with the background first.
    """
    background = torch.prod(1 - prob, dim=dim, keepdim=True)
    with_background = torch.cat([background, prob], dim=dim).clamp(_PROB_EPS, 1 - _PROB_EPS)
    logits = torch.log(with_background / (1 - with_background))
    return logits, torch.softmax(logits, dim=dim)
