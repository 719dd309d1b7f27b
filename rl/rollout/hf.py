"""Rollout backend on transformers ``generate`` (CPU, or one GPU without vLLM).

* Prompts go through the real processor (:func:`rl.models.inputs.encode_prompts`) and are
  generated in micro-batches of ``micro_batch_size`` prompts x ``n`` sequences
  (``num_return_sequences``), left-padded, with ``mm_token_type_ids`` (else M-RoPE falls
  back to 1-D positions) and explicit eos / pad ids.
* The checkpoint's ``generation_config`` is replaced by a clean one, so values such as
  Qwen's ``repetition_penalty`` or ``top_k`` never leak into RL sampling.
* Special tokens other than ``<|im_end|>`` (and ids beyond the tokenizer, which a padded
  vocabulary has) are suppressed: a sampled ``<|image_pad|>`` would break the next forward.
* Log-probs follow the convention of :mod:`rl.rollout.base`: a logits processor placed
  first sees the raw logits and keeps ``log_softmax(raw / T)`` of the current step; a
  stopping criterion (called right after the token is appended) gathers the sampled
  token's value. Only one step of ``(B, V)`` is alive at a time.
* Stop strings are matched on exact token bytes (:mod:`rl.rollout.stopping`).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    SuppressTokensLogitsProcessor,
)

from rl.models.inputs import PromptEncoding, collate_prompts, default_stop_token_ids, encode_prompts
from rl.models.loading import load_policy, load_processor
from rl.rollout.base import GeneratedResponse, RolloutBackend, RolloutOutput, SamplingParams
from rl.rollout.stopping import StopStringMatcher, token_bytes_table, truncate_response

__all__ = ["HFRolloutBackend", "suppressed_token_ids"]


def suppressed_token_ids(tokenizer, vocab_size: int, allowed: Iterable[int]) -> list[int]:
    """Special / added token ids except ``allowed``, plus ids in ``[len(tokenizer), vocab_size)``."""
    allowed = set(int(a) for a in allowed)
    special = set(int(i) for i in tokenizer.all_special_ids)
    special |= {int(i) for i, tok in tokenizer.added_tokens_decoder.items() if tok.special}
    ids = sorted(i for i in special if i not in allowed and i < vocab_size)
    ids += list(range(len(tokenizer), vocab_size))
    return ids


class _StepLogprobs:
    """State shared by the two generate hooks below: per-step sampled-token log-probs."""

    def __init__(self, temperature: float):
        self.temperature = temperature if temperature > 0 else 1.0
        self.current: torch.Tensor | None = None  # (B, V) log_softmax of this step's raw logits
        self.steps: list[torch.Tensor] = []  # one (B,) tensor per generated token


class _RecordRawLogprobs(LogitsProcessor):
    """First logits processor: keeps ``log_softmax(raw_logits / T)``; leaves the scores unchanged."""

    def __init__(self, state: _StepLogprobs):
        self.state = state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.state.current = torch.log_softmax(scores.float() / self.state.temperature, dim=-1)
        return scores


class _GatherSampledLogprob(StoppingCriteria):
    """Called after each token is appended: stores the log-prob of that token; never stops."""

    def __init__(self, state: _StepLogprobs):
        self.state = state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        if self.state.current is not None:
            sampled = input_ids[:, -1:].to(self.state.current.device)
            self.state.steps.append(self.state.current.gather(1, sampled).squeeze(1))
            self.state.current = None
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _StopStringCriteria(StoppingCriteria):
    """Marks rows whose newest token completes one of the stop strings."""

    def __init__(self, matcher: StopStringMatcher, batch_size: int):
        self.matcher = matcher
        self.tails = [b""] * batch_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = []
        for row, tok in enumerate(input_ids[:, -1].tolist()):
            hit, self.tails[row] = self.matcher.feed(self.tails[row], tok)
            done.append(hit)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFRolloutBackend(RolloutBackend):
    """``RolloutBackend`` running ``model.generate`` in-process.

    model: a Qwen2.5-VL ``...ForConditionalGeneration`` owned by this backend (its
    ``generation_config`` is replaced); processor: its ``Qwen2_5_VLProcessor``;
    micro_batch_size: prompts per ``generate`` call; seed: base seed of calls whose
    ``SamplingParams.seed`` is ``None`` (call ``k`` uses ``seed + k``).
    """

    supports_sleep = False

    def __init__(self, model, processor, micro_batch_size: int = 64, seed: int = 0):
        if micro_batch_size < 1:
            raise ValueError(f"rollout micro_batch_size must be >= 1, got {micro_batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.micro_batch_size = micro_batch_size
        self.seed = seed
        self._calls = 0
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        if len(self.tokenizer) > self.vocab_size:
            raise ValueError(f"tokenizer has {len(self.tokenizer)} tokens but the model vocabulary is {self.vocab_size}")
        self.eos_token_ids = default_stop_token_ids(self.tokenizer)
        self.pad_token_id = (
            int(self.tokenizer.pad_token_id) if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        )
        self.model.generation_config = GenerationConfig(
            eos_token_id=list(self.eos_token_ids), pad_token_id=self.pad_token_id,
            bos_token_id=getattr(model.generation_config, "bos_token_id", None),
        )
        self._token_bytes = token_bytes_table(self.tokenizer, self.vocab_size)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str = "cpu",
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        micro_batch_size: int = 64,
        seed: int = 0,
    ) -> "HFRolloutBackend":
        model = load_policy(path, dtype=dtype, attn_implementation=attn_implementation, device=device)
        return cls(model, load_processor(path), micro_batch_size=micro_batch_size, seed=seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ generate

    @staticmethod
    def _sequences_per_prompt(params: SamplingParams) -> int:
        # Greedy decoding gives n identical responses: decode once, copy n times.
        return 1 if params.greedy else params.n

    def _generation_config(self, params: SamplingParams, eos_ids: list[int]) -> GenerationConfig:
        sampling = {} if params.greedy else dict(
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else 0,
        )
        return GenerationConfig(
            do_sample=not params.greedy,
            num_return_sequences=self._sequences_per_prompt(params),
            max_new_tokens=params.max_tokens,
            min_new_tokens=0,
            eos_token_id=eos_ids,
            pad_token_id=self.pad_token_id,
            repetition_penalty=1.0,
            use_cache=True,
            return_dict_in_generate=False,
            **sampling,
        )

    def _generate_chunk(
        self, prompts: Sequence[PromptEncoding], params: SamplingParams, group_offset: int
    ) -> list[GeneratedResponse]:
        eos_ids = list(dict.fromkeys(self.eos_token_ids + params.stop_token_ids))
        inputs = collate_prompts(prompts, self.pad_token_id)
        inputs = {k: (v.to(self.device) if v is not None else None) for k, v in inputs.items()}
        if inputs["pixel_values"] is None:
            inputs.pop("pixel_values")
            inputs.pop("image_grid_thw")
        width = inputs["input_ids"].shape[1]
        per_prompt = self._sequences_per_prompt(params)
        rows = len(prompts) * per_prompt

        state = _StepLogprobs(params.temperature)
        processors = LogitsProcessorList([_RecordRawLogprobs(state)])
        # Only the chat eos (<|im_end|>) and explicitly requested stop tokens may be sampled.
        allowed = [self.eos_token_ids[0]] + params.stop_token_ids
        suppress = suppressed_token_ids(self.tokenizer, self.vocab_size, allowed=allowed)
        if suppress:
            processors.append(SuppressTokensLogitsProcessor(suppress, device=self.device))
        matcher = StopStringMatcher(self._token_bytes, params.stop)
        criteria = StoppingCriteriaList([_GatherSampledLogprob(state)])
        if matcher:
            criteria.append(_StopStringCriteria(matcher, rows))

        with torch.no_grad():
            sequences = self.model.generate(
                **inputs,
                generation_config=self._generation_config(params, eos_ids),
                logits_processor=processors,
                stopping_criteria=criteria,
            )
        self.reset_caches()  # generate caches M-RoPE deltas on the model; stale for later forwards
        generated = sequences[:, width:].tolist()
        step_lps = torch.stack(state.steps, dim=1).tolist() if state.steps else [[] for _ in range(rows)]

        out = []
        for row, tokens in enumerate(generated):
            cut = truncate_response(tokens, eos_ids, matcher)
            n_tok = len(cut.token_ids)
            text = self.tokenizer.decode(cut.token_ids, skip_special_tokens=True)
            if cut.stopped_by_string:
                ends = [text.find(s) + len(s) for s in params.stop if s in text]
                text = text[: min(ends)] if ends else text
            for _ in range(params.n // per_prompt):
                out.append(GeneratedResponse(
                    group_id=group_offset + row // per_prompt,
                    token_ids=list(cut.token_ids),
                    logprobs=[float(x) for x in step_lps[row][:n_tok]] if params.logprobs else None,
                    text=text,
                    finish_reason=cut.finish_reason,
                ))
        return out

    def generate(self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams) -> RolloutOutput:
        """``params.n`` responses per prompt record (prompt-major order), see :class:`RolloutOutput`."""
        pieces = sorted(self.generate_groups(prompts, params), key=lambda piece: piece[0])
        return RolloutOutput.concat([out for _, out in pieces])

    def generate_groups(
        self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams
    ) -> Iterator[tuple[int, RolloutOutput]]:
        """One piece per micro-batch of ``micro_batch_size`` prompts, in prompt order; the
        pieces joined equal :meth:`generate` (one seed per call, drawn at the first piece)."""
        if not prompts:
            raise ValueError("generate: no prompts given")
        encodings = encode_prompts(self.processor, prompts)
        seed = params.seed if params.seed is not None else self.seed + self._calls
        self._calls += 1
        devices = [self.device] if self.device.type == "cuda" else []
        self.model.eval()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start in range(0, len(encodings), self.micro_batch_size):
                chunk = encodings[start:start + self.micro_batch_size]
                responses = self._generate_chunk(chunk, params, group_offset=0)
                yield start, RolloutOutput([e.input_ids.tolist() for e in chunk], responses, n=params.n)

    # ------------------------------------------------------------------ weights

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy tensors into the model in place by HF parameter name, one at a time.

        A tied ``lm_head.weight`` shares storage with the input embedding, so sending either
        name updates both. Unknown names and shape mismatches raise, naming the tensor.
        """
        state = self.model.state_dict(keep_vars=True)
        count = 0
        with torch.no_grad():
            for name, tensor in named_tensors:
                if name not in state:
                    raise KeyError(f"update_weights: the rollout model has no parameter or buffer named {name!r}")
                target = state[name]
                if tuple(target.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"update_weights: shape mismatch for {name!r}: got {tuple(tensor.shape)}, "
                        f"the rollout model has {tuple(target.shape)}"
                    )
                target.copy_(tensor.to(device=target.device, dtype=target.dtype))
                count += 1
        return count

    def reset_caches(self) -> None:
        """No KV/prefix cache outlives a ``generate`` call; only the cached M-RoPE deltas are dropped."""
        inner = getattr(self.model, "model", None)
        if inner is not None and hasattr(inner, "rope_deltas"):
            inner.rope_deltas = None

    def close(self) -> None:
        self.model = None
