"""Collapse and diversity metrics of a batch of responses (pure functions, no model, no Ray).

A GRPO group whose ``n`` responses are all the same, or whose ``n`` scores are all equal,
gives no learning signal; a policy that answers every query alike has collapsed. Train
steps log (``reward_metrics`` in :mod:`rl.metrics`)::

    diversity/distinct_responses_per_group   mean over groups of the number of distinct response texts, in [1, n]
    diversity/distinct_answers_per_group     the same on the <answer> content (whitespace-normalised; no block = "")
    diversity/zero_variance_group_frac       fraction of groups whose n scores are all equal
                                             (also logged as verl's critic/solve_none_or_all)
    diversity/valid_answer_frac              fraction of box-grounding responses whose answer is a well-formed box list

validation (``validate`` in :mod:`rl.driver`) logs ``val/diversity/distinct_answer_frac``
(distinct answers / queries: 1.0 = every query got its own answer, collapse -> 1/N) and
``val/diversity/valid_answer_frac``.

A valid answer is a non-empty JSON list whose items all carry a ``bbox_2d`` of 4 finite
numbers with x1 < x2 and y1 < y2 and a ``point_2d`` of 2 finite numbers (parsed by
:func:`rewards.grounding.parse_grounding`). It is measured on KTG (box grounding) records
that have at least one target; other tasks (AKS options, Veason) and no-target
expressions, whose right answer is the empty list, are left out.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from rewards.grounding import parse_grounding
from rewards.parsing import as_text, extract_answer

GROUNDING_TASKS = ("ktg",)


def normalised_answer(response: Any) -> str:
    """Content of the first ``<answer>`` block with runs of whitespace collapsed to one space; "" without one."""
    answer = extract_answer(as_text(response))
    return " ".join(answer.split()) if answer else ""


def _groups(values: Sequence[Any], group_index: Sequence[int]) -> list[list[Any]]:
    """Values split by their group id (groups in order of first appearance)."""
    groups: dict[int, list[Any]] = {}
    for value, g in zip(values, group_index, strict=True):
        groups.setdefault(int(g), []).append(value)
    return list(groups.values())


def distinct_per_group(values: Sequence[Any], group_index: Sequence[int]) -> float:
    """Mean over groups of the number of distinct values in the group (0.0 for no values).

    values, group_index: ``N`` each (sample ``i`` belongs to group ``group_index[i]``).
    """
    groups = _groups(values, group_index)
    return float(np.mean([len(set(g)) for g in groups])) if groups else 0.0


def zero_variance_groups(values: Sequence[float] | np.ndarray, group_index: Sequence[int]) -> list[bool]:
    """Per response group (in order of first appearance): are its values all exactly equal?

    values, group_index: ``N`` each. The test is largest == smallest (an ``std == 0`` test
    can miss equal floats whose mean is rounded); a group holding a NaN is not constant.
    Such a group has zero GRPO advantage: no learning signal. Used by the ``diversity/``
    metrics and by dynamic sampling's filter (:func:`rl.dynamic_sampling.select_groups`).
    """
    return [bool(np.max(g) == np.min(g)) for g in _groups([float(v) for v in values], group_index)]


def zero_variance_group_frac(scores: Sequence[float], group_index: Sequence[int]) -> float:
    """Fraction of response groups whose scores are all exactly equal (zero GRPO advantage); 0.0 for no groups."""
    constant = zero_variance_groups(scores, group_index)
    return float(np.mean(constant)) if constant else 0.0


def is_valid_grounding_answer(response: Any) -> bool:
    """The answer is a non-empty list of items with a proper box (x1 < x2, y1 < y2) and a point, all finite."""
    answer = parse_grounding(as_text(response), max_objects=-1)
    if not answer.is_list or not answer.items or not answer.items_valid:
        return False
    boxes = answer.parsed.boxes
    return bool(np.all(boxes[:, 0] < boxes[:, 2]) and np.all(boxes[:, 1] < boxes[:, 3]))


def is_grounding_record(record: Mapping[str, Any]) -> bool:
    """A box-grounding record with at least one target (where an answer must be a non-empty box list)."""
    if record.get("task") not in GROUNDING_TASKS:
        return False
    return bool((record.get("ground_truth") or {}).get("objects"))


def valid_answer_frac(responses: Sequence[Any], grounding: Sequence[bool]) -> Optional[float]:
    """Fraction of the responses flagged ``grounding`` whose answer is valid; None when none is flagged."""
    picked = [r for r, g in zip(responses, grounding, strict=True) if g]
    if not picked:
        return None
    return float(np.mean([is_valid_grounding_answer(r) for r in picked]))


def group_metrics(texts: Sequence[str], scores: Sequence[float], group_index: Sequence[int],
                  grounding: Sequence[bool]) -> dict[str, float]:
    """``diversity/*`` metrics of one training batch.

    texts, scores, group_index, grounding: ``N`` each (``grounding[i]``: sample ``i``'s record
    is a box-grounding record, see :func:`is_grounding_record`). ``diversity/valid_answer_frac``
    is left out when no sample is a grounding one.
    """
    out = {
        "diversity/distinct_responses_per_group": distinct_per_group(list(texts), group_index),
        "diversity/distinct_answers_per_group": distinct_per_group([normalised_answer(t) for t in texts], group_index),
        "diversity/zero_variance_group_frac": zero_variance_group_frac(scores, group_index),
    }
    valid = valid_answer_frac(texts, grounding)
    if valid is not None:
        out["diversity/valid_answer_frac"] = valid
    return out


def validation_metrics(texts: Sequence[str], group_index: Sequence[int], grounding: Sequence[bool],
                       prefix: str = "val/diversity/") -> dict[str, float]:
    """``val/diversity/distinct_answer_frac`` (on the first response of each query) and ``valid_answer_frac``.

    texts, group_index, grounding: ``N`` each, ``N = queries x rollout.val_n``.
    """
    firsts: dict[int, str] = {}
    for text, g in zip(texts, group_index, strict=True):
        firsts.setdefault(int(g), text)
    out: dict[str, float] = {}
    if firsts:
        answers = {normalised_answer(t) for t in firsts.values()}
        out[prefix + "distinct_answer_frac"] = len(answers) / len(firsts)
    valid = valid_answer_frac(texts, grounding)
    if valid is not None:
        out[prefix + "valid_answer_frac"] = valid
    return out
