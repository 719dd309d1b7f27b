"""Memory reading: XMem's anisotropic L2 similarity, top-k softmax and value readout.

Shapes: ``B`` batch, ``CK`` key channels, ``N`` memory elements, ``M`` query positions.
"""

from __future__ import annotations

import math

import torch


def memory_similarity(
    memory_key: torch.Tensor,
    memory_shrinkage: torch.Tensor | None,
    query_key: torch.Tensor,
    query_selection: torch.Tensor | None,
) -> torch.Tensor:
    """Similarity of every memory element to every query position.

    ``s(n, m) = -shrinkage_n * sum_c selection_{c,m} (k_{c,n} - q_{c,m})^2 / sqrt(CK)``
    (shrinkage and selection default to 1; without a selection the query's own squared norm,
    constant per query, is left out, which does not change a softmax over ``N``).

    memory_key: ``B x CK x N``; memory_shrinkage: ``B x 1 x N`` or None;
    query_key: ``B x CK x M``; query_selection: ``B x CK x M`` or None. Returns ``B x N x M``.
    """
    key_dim = memory_key.shape[1]
    memory_key_t = memory_key.transpose(1, 2)  # B x N x CK
    if query_selection is None:
        similarity = 2 * (memory_key_t @ query_key) - memory_key.pow(2).sum(dim=1).unsqueeze(2)
    else:
        # expand -sum_c e (k - q)^2 = -(k^2 . e) + 2 k . (q e) - sum_c e q^2
        similarity = (
            2 * (memory_key_t @ (query_key * query_selection))
            - memory_key_t.pow(2) @ query_selection
            - (query_selection * query_key.pow(2)).sum(dim=1, keepdim=True)
        )
    if memory_shrinkage is not None:
        similarity = similarity * memory_shrinkage.transpose(1, 2)
    return similarity / math.sqrt(key_dim)


def topk_softmax(similarity: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Softmax over memory elements (dim 1) restricted to each query's ``top_k`` most similar.

    similarity: ``B x N x M`` -> affinity ``B x N x M``, zero outside the top-k, columns summing
    to 1. ``top_k`` None or ``>= N`` is a plain softmax over all ``N``.
    """
    if top_k is None or top_k >= similarity.shape[1]:
        return torch.softmax(similarity, dim=1)
    values, indices = similarity.topk(top_k, dim=1)
    return torch.zeros_like(similarity).scatter_(1, indices, torch.softmax(values, dim=1))


def read_values(affinity: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Affinity-weighted sum of memory values.

    affinity: ``B x N x M``; values: ``B x C x N`` or ``K x C x N`` with ``B == 1``
    (objects share the affinity) -> ``B x C x M`` / ``K x C x M``.
    """
    return values @ affinity
