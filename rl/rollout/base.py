"""Rollout backend interface (shaped after vLLM's offline API; needs neither a GPU nor vllm).

A backend turns prompts (sample records ``{"prompt", "images", "system"?}``) into ``n``
sampled responses each, with the sampled tokens' log-probs, and accepts new weights
from the actor as a stream of ``(name, tensor)`` pairs.

Log-prob convention (all backends): ``log_softmax(raw_logits / temperature)`` of the
sampled token over the full vocabulary, i.e. *before* top-k / top-p filtering and token
suppression, the same quantity :func:`rl.models.logprobs.policy_logprobs` computes by
teacher forcing (vLLM's ``logprobs`` default, "raw" in its ``logprobs_mode`` terms).
With ``temperature == 0`` (greedy) the log-probs are those of ``temperature = 1``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch

from rl.config import RolloutConfig

__all__ = ["FINISH_REASONS", "SamplingParams", "GeneratedResponse", "RolloutOutput", "RolloutBackend"]

FINISH_REASONS = ("stop", "length")


@dataclass
class SamplingParams:
    """Sampling settings of one ``generate`` call.

    n: responses per prompt; temperature: 0 = greedy; top_p in (0, 1]; top_k: -1 = off;
    max_tokens: response token budget; stop: strings that end a response (kept in it);
    stop_token_ids: extra token ids that end a response besides the tokenizer's eos (kept);
    seed: sampling seed of this call (None: the backend's own running seed);
    logprobs: return the sampled tokens' log-probs.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k == 0 or self.top_k < -1:
            raise ValueError(f"SamplingParams.top_k must be -1 (off) or >= 1, got {self.top_k}")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}")
        if any(not s for s in self.stop):
            raise ValueError("SamplingParams.stop contains an empty string")
        self.stop = list(self.stop)
        self.stop_token_ids = [int(t) for t in self.stop_token_ids]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def from_config(cls, cfg: RolloutConfig, validation: bool = False, seed: int | None = None) -> "SamplingParams":
        """Training sampling from ``rollout.*``; ``validation`` uses ``val_temperature`` / ``val_n``."""
        return cls(
            n=cfg.val_n if validation else cfg.n,
            temperature=cfg.val_temperature if validation else cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            max_tokens=cfg.max_response_length,
            stop=list(cfg.stop),
            seed=seed,
        )


@dataclass
class GeneratedResponse:
    """One sampled response.

    token_ids: response tokens, ending with the eos / stop token or the token that
    completed a stop string (nothing after it); logprobs: one float per token (or None);
    text: decoded without special tokens, ending right after the stop string if one ended it;
    finish_reason: ``"stop"`` (eos, stop token or stop string) or ``"length"`` (max_tokens);
    group_id: index of the prompt in the ``generate`` call.
    """

    group_id: int
    token_ids: list[int]
    logprobs: list[float] | None
    text: str
    finish_reason: str

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")
        if self.logprobs is not None and len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"{len(self.logprobs)} logprobs for {len(self.token_ids)} tokens")


@dataclass
class RolloutOutput:
    """All responses of a ``generate`` call, prompt-major: response ``k`` of prompt ``i`` is
    ``responses[i * n + k]``. ``prompt_token_ids[i]``: the processed prompt (image pads expanded)."""

    prompt_token_ids: list[list[int]]
    responses: list[GeneratedResponse]
    n: int

    def __post_init__(self) -> None:
        if len(self.responses) != len(self.prompt_token_ids) * self.n:
            raise ValueError(
                f"RolloutOutput: {len(self.responses)} responses for {len(self.prompt_token_ids)} prompts x n={self.n}"
            )

    def __len__(self) -> int:
        return len(self.responses)

    @property
    def num_prompts(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def group_ids(self) -> list[int]:
        return [r.group_id for r in self.responses]

    @property
    def token_ids(self) -> list[list[int]]:
        return [r.token_ids for r in self.responses]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.responses]

    @property
    def finish_reasons(self) -> list[str]:
        return [r.finish_reason for r in self.responses]

    @property
    def logprobs(self) -> list[list[float]] | None:
        if any(r.logprobs is None for r in self.responses):
            return None
        return [r.logprobs for r in self.responses]

    def padded_logprobs(self, width: int | None = None) -> torch.Tensor:
        """Sampled-token log-probs as ``(num_responses, width)`` float32, 0-padded on the right."""
        lps = self.logprobs
        if lps is None:
            raise ValueError("this rollout was generated without logprobs")
        width = max((len(x) for x in lps), default=0) if width is None else width
        out = torch.zeros((len(lps), width), dtype=torch.float32)
        for i, x in enumerate(lps):
            k = min(len(x), width)
            out[i, :k] = torch.tensor(x[:k], dtype=torch.float32)
        return out

    @staticmethod
    def concat(outputs: Sequence["RolloutOutput"]) -> "RolloutOutput":
        """Join outputs of consecutive prompt chunks (group ids are re-numbered)."""
        if not outputs:
            raise ValueError("RolloutOutput.concat needs at least one output")
        n = outputs[0].n
        prompts: list[list[int]] = []
        responses: list[GeneratedResponse] = []
        for out in outputs:
            if out.n != n:
                raise ValueError(f"RolloutOutput.concat: n differs ({out.n} vs {n})")
            offset = len(prompts)
            prompts.extend(out.prompt_token_ids)
            responses.extend(
                GeneratedResponse(r.group_id + offset, r.token_ids, r.logprobs, r.text, r.finish_reason)
                for r in out.responses
            )
        return RolloutOutput(prompts, responses, n)


class RolloutBackend(abc.ABC):
    """Generation engine of the rollout worker group."""

    #: Whether :meth:`sleep` / :meth:`wake` free and restore the engine's memory.
    supports_sleep: bool = False
    #: ``generate`` calls so far: a call without ``SamplingParams.seed`` samples with the
    #: backend's ``seed + _calls`` (set by the backends that sample).
    _calls: int = 0

    def sampling_state(self) -> dict[str, int]:
        """What the next calls' seeds depend on besides the backend's base seed: ``{"calls": k}``
        (checkpointed by the driver, so a resumed run samples with the seeds it would have used)."""
        return {"calls": int(self._calls)}

    def load_sampling_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`sampling_state`."""
        self._calls = int(state["calls"])

    @abc.abstractmethod
    def generate(self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams) -> RolloutOutput:
        """``params.n`` responses for each prompt record."""

    def generate_groups(
        self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams
    ) -> Iterator[tuple[int, RolloutOutput]]:
        """Stream the result of :meth:`generate` as ``(first prompt index, output)`` pieces, each
        covering consecutive whole GRPO groups, yielded as soon as their responses exist and in
        any order (the reward pool scores a group while later ones are still generating).
        Group ids inside a piece count from 0. This default yields everything at the end."""
        yield 0, self.generate(prompts, params)

    @abc.abstractmethod
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Load new policy weights, consuming ``(HF parameter name, tensor)`` pairs one at a
        time (a generator over buckets is fine; no full state dict is needed). Returns the
        number of tensors loaded. Call :meth:`reset_caches` afterwards."""

    @abc.abstractmethod
    def reset_caches(self) -> None:
        """Drop every cache that may hold results of the old weights (prefix/KV, encoder, mm)."""

    def sleep(self) -> None:
        """Free engine memory between rollouts (no-op unless :attr:`supports_sleep`)."""

    def wake(self) -> None:
        """Undo :meth:`sleep` (no-op unless :attr:`supports_sleep`)."""

    def close(self) -> None:
        """Release the engine."""
