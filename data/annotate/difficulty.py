"""``difficulty`` job (VideoSeg-R1): an MLLM rates each sample 1-10 per axis; D = the mean rating.

Prompt record: ``{"prompt": <rating prompt>, "images": sample["images"], "system": sample["system"]}``
(``system`` only when the sample carries one; built samples do not). The rating prompt is
``annotate.difficulty.prompt`` or :data:`DEFAULT_PROMPT`, with the placeholders filled by plain text
replacement (other braces are left alone, so a custom prompt may show JSON):

* ``{query}``: the sample's query (surrounding quotes and the trailing ``.`` removed);
* ``{axes}``: one line per axis, ``- <name>: <description>`` (the description only for the five
  built-in axes, :data:`AXIS_DESCRIPTIONS`);
* ``{example}``: an example answer, ``{"<axis 1>": 5, "<axis 2>": 5, ...}``.

Answer rules (:func:`parse_ratings`), anything else is unparseable (retried at
``annotate.retry_temperature``, then recorded failed):

* after stripping surrounding whitespace, the answer is exactly one JSON object, optionally wrapped
  in ``<answer> ... </answer>`` and/or a Markdown fence (```` ``` ```` or ```` ```json ````), each at most
  once and in either nesting; no other text (no reasoning outside, no second object);
* its keys are exactly the axes (none missing, no unknown or duplicate key);
* every value is an integer 1..10; an integral float (``7.0``) counts as that integer; booleans,
  strings, non-integral floats (``7.5``), NaN and values outside 1..10 are rejected.

Record (a ``done`` sample)::

    record["difficulty"] = {"ratings": {axis: int, ...}, "D": float (mean rating, not rounded),
                            "level": "easy" | "medium" | "hard", "rater": <model name>}
    record["ground_truth"]["difficulty"] = D    (the VideoSeg-R1 reward reads it there)

``level`` uses ``reward.params.videoseg_r1.tau_easy`` / ``tau_hard`` with the reward's own rule
(:func:`rewards.videoseg_r1.difficulty_level`): easy if D < tau_easy, hard if D >= tau_hard, else
medium. A failed sample is written unchanged (no difficulty anywhere).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence

from data.annotate.job import AnnotationJob, Outcome, Request
from data.prompts import clean_query
from rewards.videoseg_r1 import difficulty_level

__all__ = ["DifficultyJob", "AXIS_DESCRIPTIONS", "DEFAULT_PROMPT", "rating_prompt", "parse_ratings",
           "mean_difficulty", "difficulty_level"]

#: What each of VideoSeg-R1's axes measures (shown to the rater).
AXIS_DESCRIPTIONS = {
    "scene_complexity": "how cluttered the scene is (number of objects, distractors, background detail)",
    "segmentation_challenge": "how hard the target is to delineate (small, occluded, thin parts, "
                              "low-contrast or blurred boundaries)",
    "temporal_ambiguity": "how much finding the target depends on when things happen in the video "
                          "(events, their order, the target appearing or leaving)",
    "motion_complexity": "how fast, erratic or entangled the motion of the target and the other objects is",
    "linguistic_ambiguity": "how indirect or vague the query is (implicit references, reasoning or "
                            "world knowledge needed to resolve it)",
}

DEFAULT_PROMPT = (
    "Rate how difficult this video reasoning segmentation sample is for a model that must find and segment "
    "the target object(s) described by the query. The images are frames of the video, in temporal order.\n"
    'Query: "{query}"\n'
    "Rate each axis from 1 (very easy) to 10 (very hard):\n"
    "{axes}\n"
    "Reply with ONLY a JSON object that maps every axis name to an integer from 1 to 10, for example "
    "{example}, and nothing else."
)

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)


def rating_prompt(query: str, axes: Sequence[str], template: str = "") -> str:
    """The rating prompt for ``query`` (``template`` "" = :data:`DEFAULT_PROMPT`; see the module docstring)."""
    lines = "\n".join(f"- {a}: {AXIS_DESCRIPTIONS[a]}" if a in AXIS_DESCRIPTIONS else f"- {a}" for a in axes)
    example = json.dumps({a: 5 for a in axes})
    text = template or DEFAULT_PROMPT
    return text.replace("{query}", clean_query(query)).replace("{axes}", lines).replace("{example}", example)


def _unwrap(text: str) -> str:
    """``text`` stripped of one ``<answer>`` wrapper and one code fence (either order), each optional."""
    text = text.strip()
    peeled: set[str] = set()
    while True:
        if "answer" not in peeled and text.startswith("<answer>") and text.endswith("</answer>"):
            peeled.add("answer")
            text = text[len("<answer>"):-len("</answer>")].strip()
            continue
        fence = None if "fence" in peeled else _FENCE.fullmatch(text)
        if fence is None:
            return text
        peeled.add("fence")
        text = fence.group(1).strip()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _rating(value: Any) -> int | None:
    """``value`` as an integer rating 1..10, or None (bool, str, non-integral, out of range)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 10:
        return None
    return value


def parse_ratings(text: Any, axes: Sequence[str]) -> dict[str, int] | None:
    """``{axis: rating}`` (in ``axes`` order) from a rater's answer, or None (rules: module docstring)."""
    if not isinstance(text, str):
        return None
    body = _unwrap(text)
    if not (body.startswith("{") and body.endswith("}")):
        return None
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) != set(axes):
        return None
    ratings = {a: _rating(data[a]) for a in axes}
    if any(v is None for v in ratings.values()):
        return None
    return ratings  # type: ignore[return-value]


def mean_difficulty(ratings: Mapping[str, int]) -> float:
    """D: the mean of the ratings (a float, not rounded)."""
    if not ratings:
        raise ValueError("no ratings")
    return float(sum(ratings.values())) / len(ratings)


class DifficultyJob(AnnotationJob):
    """Rates every sample (any task); see the module docstring for the prompt, rules and record."""

    name = "difficulty"

    def __init__(self, cfg: Any, model_name: str):
        super().__init__(cfg, model_name)
        self.job_cfg = cfg.annotate.difficulty
        self.axes = list(self.job_cfg.axes)
        params = cfg.reward.params.videoseg_r1
        self.tau_easy, self.tau_hard = float(params.tau_easy), float(params.tau_hard)

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["levels"] = {"tau_easy": self.tau_easy, "tau_hard": self.tau_hard}
        return out

    def request(self, sample: dict[str, Any], attempt: int) -> Request:
        prompt: dict[str, Any] = {
            "prompt": rating_prompt(sample.get("query", ""), self.axes, self.job_cfg.prompt),
            "images": list(sample.get("images") or []),
        }
        if sample.get("system"):
            prompt["system"] = sample["system"]
        temperature = self.job_cfg.temperature if attempt == 0 else self.cfg.annotate.retry_temperature
        return Request(prompt=prompt, n=1, temperature=float(temperature))

    def judge(self, sample: dict[str, Any], answers: list[str]) -> Outcome:
        for answer in answers:
            ratings = parse_ratings(answer, self.axes)
            if ratings is not None:
                d = mean_difficulty(ratings)
                return Outcome("done", fields={"difficulty": {
                    "ratings": ratings, "D": d, "level": difficulty_level(d, self.tau_easy, self.tau_hard),
                    "rater": self.model_name,
                }}, raw=list(answers))
        return Outcome("retry", reason="unparseable", raw=list(answers))

    def rows(self, sample: dict[str, Any], outcome: Outcome) -> list[dict[str, Any]]:
        """The record with ``difficulty`` and ``ground_truth["difficulty"] = D`` (copies; the input is not
        modified); unchanged unless ``done``."""
        if outcome.status != "done":
            return [sample]
        row = {**sample, **outcome.fields}
        row["ground_truth"] = {**(sample.get("ground_truth") or {}), "difficulty": outcome.fields["difficulty"]["D"]}
        return [row]
