"""SAM2 keyframe segmenter: one image embedding per image, all prompt sets decoded in batches.

The n responses of a GRPO group share one keyframe. :class:`Sam2ImageSegmenter`
embeds it once (``SAM2ImagePredictor.set_image``), keeps the embedded predictor in
an LRU cache keyed by a hash of the image content, and decodes the distinct
object prompts of all prompt sets with batched ``predict`` calls. Each object's
prompt is its box (as the two corner tokens SAM2 uses for boxes, labels 2 and 3)
followed by its positive (1) and negative (0) points; objects with the same
number of tokens are decoded together, so the result equals one ``predict`` per
object. The object masks of a prompt set are OR'd.

The module imports torch / sam2 only when a segmenter is built.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from typing import Any, Sequence

import numpy as np

from rewards.vision.base import ObjectPrompt
from rewards.vision.prompts import PromptKey, check_image, clean_prompt, union_per_set, unique_prompts
from rewards.vision.sam2_common import backbone_feature_sizes, build_sam2_model

BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL = 2, 3  # SAM2's token labels for box corners


def image_key(image: np.ndarray) -> str:
    """Content hash of an image (shape, dtype and bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.shape, image.dtype.str)).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def prompt_tokens(
    prompt: ObjectPrompt, stats: Counter, height: int | None = None, width: int | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """SAM2 prompt tokens of one object: ``(L x 2 float32 coords (x, y), L int32 labels)``, or None if empty.

    The box becomes two corner tokens (labels 2, 3) placed first, as SAM2's predictor does.
    Malformed cues (:mod:`rewards.vision.prompts`: non-finite, reversed, or outside the
    ``height x width`` image when the size is given) are dropped and counted in ``stats``;
    a box partly outside the image is clipped into it.
    """
    clean = clean_prompt(prompt, stats, height, width)
    coords, labels = [], []
    if clean.box is not None:
        x1, y1, x2, y2 = clean.box
        coords += [(x1, y1), (x2, y2)]
        labels += [BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL]
    coords += [tuple(p) for p in clean.points]
    labels += [int(v) for v in clean.labels]
    if not coords:
        return None
    return np.asarray(coords, np.float32).reshape(-1, 2), np.asarray(labels, np.int32)


class Sam2ImageSegmenter:
    """SAM2 behind the :class:`~rewards.vision.base.Segmenter` interface.

    Args:
        sam2_config: packaged sam2 config name (``SegmenterConfig.sam2_config``).
        checkpoint: ``.pt`` path; empty for random weights (``FileNotFoundError`` if missing).
        image_size: SAM2 input resolution, a multiple of 32 (1024 released).
        device: torch device string.
        cache_size: embedded images kept (LRU); 0 re-embeds on every call.
        multimask_output: decode SAM2's 3 candidate masks and keep the one with the highest
            predicted IoU (True), or decode a single mask (False).
        mask_threshold: logit threshold of a foreground pixel.
        decode_batch_size: most objects per mask-decoder call.
        seed: torch seed for random weights (None: torch's current RNG).
        model: an already built SAM2 image model to share (then the config arguments are unused
            except ``image_size``, which must match it).

    :attr:`stats` counts ``embeddings_computed``, ``cache_hits``, ``decoder_calls``,
    ``objects_decoded``, ``objects_skipped`` (no usable cue), ``boxes_dropped`` (non-finite or
    reversed), ``boxes_outside_image``, ``points_dropped`` (non-finite), ``points_outside_image``:
    malformed cues never reach SAM2 (the rule of :mod:`rewards.vision.prompts`).
    Not thread-safe: one instance per reward worker (Ray actors call it serially).
    Cached embeddings cost about ``256*(S/16)^2 + 32*(S/4)^2 + 64*(S/8)^2`` floats each
    (~16 MB at S = 1024).
    """

    def __init__(
        self,
        sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml",
        checkpoint: str = "",
        image_size: int = 1024,
        device: str = "cpu",
        cache_size: int = 8,
        multimask_output: bool = True,
        mask_threshold: float = 0.0,
        decode_batch_size: int = 64,
        seed: int | None = 0,
        model: Any = None,
    ) -> None:
        if cache_size < 0 or decode_batch_size < 1:
            raise ValueError(f"SAM2 cache_size must be >= 0 and decode_batch_size >= 1, got {cache_size}, {decode_batch_size}")
        self.model = model if model is not None else build_sam2_model(sam2_config, checkpoint, image_size, device, False, seed)
        if self.model.image_size != image_size:
            raise ValueError(f"SAM2 model image_size {self.model.image_size} != requested image_size {image_size}")
        self.image_size = image_size
        self.cache_size = cache_size
        self.multimask_output = multimask_output
        self.mask_threshold = mask_threshold
        self.decode_batch_size = decode_batch_size
        self.stats: Counter = Counter()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._scratch: Any = None

    @classmethod
    def from_config(cls, cfg: Any = None, **overrides: Any) -> "Sam2ImageSegmenter":
        """Build from a ``SegmenterConfig``-like object (optional fields ``embedding_cache_size``,
        ``multimask_output``, ``decode_batch_size`` are used when present)."""
        kwargs: dict[str, Any] = {}
        if cfg is not None:
            kwargs = dict(sam2_config=cfg.sam2_config, checkpoint=cfg.checkpoint, image_size=cfg.image_size, device=cfg.device)
            for field, name in (("embedding_cache_size", "cache_size"), ("multimask_output", "multimask_output"),
                                ("decode_batch_size", "decode_batch_size")):
                if hasattr(cfg, field):
                    kwargs[name] = getattr(cfg, field)
        return cls(**{**kwargs, **overrides})

    # ------------------------------------------------------------------ embedding cache

    def _new_predictor(self) -> Any:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(self.model, mask_threshold=self.mask_threshold)
        # sam2 1.1.0 hard-codes the 1024-px feature sizes; they must follow image_size.
        predictor._bb_feat_sizes = backbone_feature_sizes(self.image_size)
        return predictor

    def predictor_for(self, image: np.ndarray) -> Any:
        """A ``SAM2ImagePredictor`` with ``image`` (``H x W x 3`` uint8) embedded, from the cache when possible.

        Predictor objects are recycled: on a miss with a full cache the least recently used
        one re-embeds the new image.
        """
        image = check_image(image)
        key = image_key(image)
        if key in self._cache:
            self._cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return self._cache[key]
        if self.cache_size == 0:
            predictor = self._scratch = self._scratch or self._new_predictor()
        elif len(self._cache) >= self.cache_size:
            _, predictor = self._cache.popitem(last=False)
        else:
            predictor = self._new_predictor()
        predictor.set_image(image)
        self.stats["embeddings_computed"] += 1
        if self.cache_size > 0:
            self._cache[key] = predictor
        return predictor

    def clear_cache(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------ segmentation

    def segment(self, image: np.ndarray, prompt_sets: Sequence[Sequence[ObjectPrompt]]) -> list[np.ndarray]:
        """One ``H x W`` bool mask per prompt set; the image is embedded at most once."""
        image = check_image(image)
        height, width = image.shape[:2]
        objects = unique_prompts(prompt_sets)
        tokens: dict[PromptKey, tuple[np.ndarray, np.ndarray]] = {}
        for key, prompt in objects.items():
            tok = prompt_tokens(prompt, self.stats, height, width)
            if tok is None:
                self.stats["objects_skipped"] += 1
            else:
                tokens[key] = tok
        masks: dict[PromptKey, np.ndarray | None] = {}
        if tokens:
            masks.update(self.decode(self.predictor_for(image), tokens))
        return union_per_set(prompt_sets, masks, height, width)

    def decode(self, predictor: Any, tokens: dict[PromptKey, tuple[np.ndarray, np.ndarray]]) -> dict[PromptKey, np.ndarray]:
        """``H x W`` bool mask per object from its tokens, batching objects with equal token counts."""
        by_length: dict[int, list[PromptKey]] = {}
        for key, (coords, _) in tokens.items():
            by_length.setdefault(len(coords), []).append(key)
        out: dict[PromptKey, np.ndarray] = {}
        for keys in by_length.values():
            for start in range(0, len(keys), self.decode_batch_size):
                chunk = keys[start : start + self.decode_batch_size]
                coords = np.stack([tokens[k][0] for k in chunk])      # B x L x 2
                labels = np.stack([tokens[k][1] for k in chunk])      # B x L
                masks, scores, _ = predictor.predict(
                    point_coords=coords, point_labels=labels, multimask_output=self.multimask_output
                )
                height, width = masks.shape[-2:]
                masks = masks.reshape(len(chunk), -1, height, width)  # B x C x H x W (predict squeezes B=1)
                scores = scores.reshape(len(chunk), -1)               # B x C
                best = scores.argmax(axis=1)
                for i, key in enumerate(chunk):
                    out[key] = masks[i, best[i]] > 0.5
                self.stats["decoder_calls"] += 1
                self.stats["objects_decoded"] += len(chunk)
        return out
