"""``cot`` job (RCoT-Seg / Veason-R1 CoT-SFT cold start): teacher traces kept by rejection sampling.

Samples: every task whose answers a reward can check against the ground truth, i.e. ``ktg``, ``aks``
and ``veason`` (:data:`COT_TASKS`; Veason-R1's cold start is CoT-SFT too, and its reward scores the
keyframe and the boxes). With ``annotate.cot.reward`` set, only the samples of the tasks that reward
declares (``Reward.tasks``); others pass through unchanged.

Prompt: the sample's own task prompt and images (and ``system`` when the sample has one), so the
trace follows the answer format the policy is trained on. With ``annotate.cot.hints`` a hint block
is appended (:func:`hint_block`) giving the ground-truth answer (KTG: the box and point(s) of every
object, in the JSON the prompt asks for; AKS: the correct option; Veason: the keyframe timestamp and
its boxes) and asking the teacher to reason towards it without mentioning the hint.

``annotate.cot.k`` traces at ``annotate.cot.temperature`` (retries at ``annotate.retry_temperature``).
Each trace is parsed (:func:`parse_trace`); a parseable one is scored in its canonical form
``<think>T</think><answer>A</answer>`` by the sample's reward (:mod:`data.annotate.scoring`).
:func:`select_trace` keeps the best (first on ties) when it scores >= ``threshold`` x the reward's
maximum score. Verdicts: no trace parses -> ``retry`` (``unparseable``); parseable but none passes ->
``failed`` (``below_threshold``); the reward cannot score the sample -> ``failed``
(``invalid_sample``). Record of a kept sample::

    record["teacher_cot"] = {"target": canonical trace, "score": float, "max_score": float,
                             "teacher": <model name>, "reward": <reward name>, "k": traces sampled,
                             "passed": traces scoring >= the threshold, "hints": bool}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from data import prompts
from data.annotate.job import Outcome, Request
from data.annotate.scoring import ScoredJob, reward_fits, reward_for
from rewards.errors import InvalidSampleError

__all__ = ["CotJob", "COT_TASKS", "Trace", "parse_trace", "select_trace", "hint_block", "passes"]

#: Tasks the cot job annotates.
COT_TASKS = ("ktg", "aks", "veason")

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")

#: Slack of the threshold comparison (a score equal to threshold x max passes despite rounding).
TOLERANCE = 1e-9

_HINT = (
    "\n\nHint, for you only: the correct answer is\n{answer}\n"
    "Reason step by step about what you see in the image(s) inside <think> </think>, as if you worked "
    "it out yourself, arriving at this answer; then give exactly this answer inside <answer> </answer>. "
    "Never mention the hint or that you were given the answer."
)
_AKS_MEANING = {"A": "A (the target is clearly visible: keep this frame)",
                "B": "B (the target is not visible: select another frame)"}


@dataclass(frozen=True)
class Trace:
    """A parsed trace: ``think`` and ``answer`` contents (stripped, non-empty) and the repair applied.

    repair: ``""`` (the text is ``<think>...</think><answer>...</answer>`` up to whitespace),
    ``"trailing_text"`` (text after ``</answer>`` was dropped) or ``"unclosed_answer"`` (no ``</answer>``:
    the answer runs to the end of the text).
    """

    think: str
    answer: str
    repair: str = ""

    @property
    def target(self) -> str:
        """The canonical trace ``<think>T</think><answer>A</answer>`` (what is scored and kept)."""
        return f"<think>{self.think}</think><answer>{self.answer}</answer>"


def parse_trace(text: Any) -> Trace | None:
    """The think / answer structure of a teacher trace, or None.

    Accepted: ``<think>T</think>`` then ``<answer>A</answer>``, with any whitespace around the whole
    text, between the blocks and inside the tags (stripped); near-valid forms, repaired: text after
    ``</answer>`` (dropped; it must hold no tag) and a missing final ``</answer>``. Rejected: text
    before ``<think>``, no ``</think>`` or no ``<answer>`` after it, text between ``</think>`` and
    ``<answer>``, an empty think or answer, a tag inside the think or the answer (nested or repeated
    blocks), anything that is not a str.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    if not s.startswith("<think>"):
        return None
    close = s.find("</think>")
    if close < 0:
        return None
    think = s[len("<think>"):close]
    rest = s[close + len("</think>"):].lstrip()
    if not rest.startswith("<answer>"):
        return None
    body = rest[len("<answer>"):]
    end = body.find("</answer>")
    repair = ""
    if end < 0:
        answer, repair = body, "unclosed_answer"
    else:
        answer, tail = body[:end], body[end + len("</answer>"):]
        if any(tag in tail for tag in _TAGS):
            return None
        repair = "trailing_text" if tail.strip() else ""
    if any(tag in think or tag in answer for tag in _TAGS):
        return None
    think, answer = think.strip(), answer.strip()
    if not think or not answer:
        return None
    return Trace(think, answer, repair)


def passes(score: float, threshold_fraction: float, max_score: float) -> bool:
    """``score >= threshold_fraction * max_score`` (within :data:`TOLERANCE`)."""
    return score >= threshold_fraction * max_score - TOLERANCE


def select_trace(scores: Sequence[float | None], threshold_fraction: float, max_score: float) -> int | None:
    """Index of the kept trace, or None.

    scores: one per trace, None for a trace that does not parse. The best score wins (the first on
    ties) and is kept iff :func:`passes`; None when no trace parses or the best does not pass.
    """
    best: int | None = None
    for i, score in enumerate(scores):
        if score is not None and (best is None or score > scores[best]):
            best = i
    if best is None or not passes(scores[best], threshold_fraction, max_score):
        return None
    return best


def hint_block(sample: Mapping[str, Any]) -> str:
    """The ground-truth hint appended to the sample's prompt (see the module docstring)."""
    gt = sample.get("ground_truth") or {}
    task = sample.get("task")
    if task == "ktg":
        answer = prompts.ktg_answer(gt.get("objects") or [],
                                    negative_points='"neg_point_2d"' in str(sample.get("prompt", "")))
    elif task == "aks":
        letter = str(gt["answer"]).strip()
        answer = _AKS_MEANING.get(letter, letter)
    elif task == "veason":
        answer = prompts.veason_answer(gt["keyframe"], [o["bbox_2d"] for o in gt.get("objects") or []])
    else:
        raise ValueError(f"no hint for task {task!r}; expected one of {COT_TASKS}")
    return _HINT.format(answer=answer)


class CotJob(ScoredJob):
    """Rejection-sampled teacher traces (see the module docstring)."""

    name = "cot"

    def wants(self, sample: dict[str, Any]) -> bool:
        return sample.get("task") in COT_TASKS and reward_fits(sample, self.job_cfg.reward)

    def request(self, sample: dict[str, Any], attempt: int) -> Request:
        text = str(sample["prompt"])
        if self.job_cfg.hints:
            text += hint_block(sample)
        prompt: dict[str, Any] = {"prompt": text, "images": list(sample.get("images") or [])}
        if sample.get("system"):
            prompt["system"] = sample["system"]
        temperature = self.job_cfg.temperature if attempt == 0 else self.cfg.annotate.retry_temperature
        return Request(prompt=prompt, n=int(self.job_cfg.k), temperature=float(temperature))

    def judge(self, sample: dict[str, Any], answers: list[str]) -> Outcome:
        raw = list(answers)
        traces = [parse_trace(a) for a in answers]
        parsed = [i for i, t in enumerate(traces) if t is not None]
        if not parsed:
            return Outcome("retry", reason="unparseable", raw=raw)
        name = reward_for(sample, self.job_cfg.reward)
        try:
            rows = self.scorers.score(name, [traces[i].target for i in parsed], sample)
        except InvalidSampleError:
            return Outcome("failed", reason="invalid_sample", raw=raw)
        scores: list[float | None] = [None] * len(answers)
        for i, row in zip(parsed, rows):
            scores[i] = row["score"]
        top = self.scorers.max_score(name)
        threshold = float(self.job_cfg.threshold)
        kept = select_trace(scores, threshold, top)
        if kept is None:
            return Outcome("failed", reason="below_threshold", raw=raw)
        return Outcome("done", fields={"teacher_cot": {
            "target": traces[kept].target,
            "score": float(scores[kept]),
            "max_score": top,
            "teacher": self.model_name,
            "reward": name,
            "k": len(answers),
            "passed": sum(1 for s in scores if s is not None and passes(s, threshold, top)),
            "hints": bool(self.job_cfg.hints),
        }}, raw=raw)
