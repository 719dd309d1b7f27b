"""``generate`` job: n responses per sample, each scored by a registered reward; rows are rescorable.

Prompt: the sample's own prompt and images (and ``system`` when it has one). ``annotate.generate.n``
responses at ``annotate.generate.temperature`` (0 = greedy). Never retried: every response is kept
and scored as it is (an evaluation tool). The reward is ``annotate.generate.reward`` or the sample's
own (:mod:`data.annotate.scoring`); with a reward set, only the samples of its tasks are answered.

One output row per response::

    {**sample, "response": str, "response_index": int (0..n-1, sampling order),
     "rewards": {component: float, ..., "score": float}, "reward_name": str, "generator": <model name>,
     "params": {the reward's params, every field}}

so ``python -m rewards.score --reward <reward_name> --input rows.jsonl`` rescores each row with the same
params (``params`` is what ``rewards.score`` reads per line) and gets the same score, model terms aside
(``rewards.score`` uses the package-default models, this job ``reward.segmenter``'s). A sample the
reward cannot score is ``failed`` (``invalid_sample``) and writes no row.
"""

from __future__ import annotations

from typing import Any

from data.annotate.job import Outcome, Request
from data.annotate.scoring import ScoredJob, plain, reward_fits, reward_for
from rewards.errors import InvalidSampleError

__all__ = ["GenerateJob"]


class GenerateJob(ScoredJob):
    """n scored responses per sample (see the module docstring)."""

    name = "generate"
    keeps_unannotated = False  # rows are responses: a record not asked has none

    def wants(self, sample: dict[str, Any]) -> bool:
        return reward_fits(sample, self.job_cfg.reward)

    def request(self, sample: dict[str, Any], attempt: int) -> Request:
        prompt: dict[str, Any] = {"prompt": str(sample["prompt"]), "images": list(sample.get("images") or [])}
        if sample.get("system"):
            prompt["system"] = sample["system"]
        return Request(prompt=prompt, n=int(self.job_cfg.n), temperature=float(self.job_cfg.temperature))

    def judge(self, sample: dict[str, Any], answers: list[str]) -> Outcome:
        raw = [str(a) for a in answers]
        name = reward_for(sample, self.job_cfg.reward)
        try:
            scores = self.scorers.score(name, raw, sample)
        except InvalidSampleError:
            return Outcome("failed", reason="invalid_sample", raw=raw)
        generations = [{"response": text, "response_index": i, "rewards": row}
                       for i, (text, row) in enumerate(zip(raw, scores))]
        return Outcome("done", fields={"generations": generations, "reward_name": name,
                                       "params": self.scorers.params(name)}, raw=raw)

    def rows(self, sample: dict[str, Any], outcome: Outcome) -> list[dict[str, Any]]:
        """One row per response of a ``done`` sample (new dicts; the input is not modified), else none."""
        if outcome.status != "done":
            return []
        fields = outcome.fields
        return [{**sample, **gen, "reward_name": fields["reward_name"], "generator": self.model_name,
                 "params": plain(fields["params"])} for gen in fields["generations"]]
