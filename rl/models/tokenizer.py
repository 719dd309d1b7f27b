"""Tiny offline byte-level BPE tokenizer with Qwen2.5-VL's special tokens and chat format.

The tiny policy (``rl.models.tiny``) cannot download Qwen's 152k-token tokenizer,
so we train a ~1000-token byte-level BPE with the ``tokenizers`` library on a small
built-in corpus (prompt templates, ``<think>``/``<answer>`` traces, JSON cues with
pixel coordinates, query words). Layout follows Qwen2:

* pre-tokenisation splits every digit into its own piece (numbers are sequences of
  single-digit tokens: compact and learnable), letters keep one leading
  non-letter character, punctuation runs and whitespace are separate pieces;
* byte-level alphabet (any text round-trips, no unknown token);
* the special tokens come *after* the learned vocabulary (as in Qwen, where they
  start at id 151643); no BOS is added; ``<|im_end|>`` is the EOS and
  ``<|endoftext|>`` the pad token;
* a Qwen2-style chat template (``<|im_start|>role\\n...<|im_end|>\\n``, images as
  ``<|vision_start|><|image_pad|><|vision_end|>``, default system prompt).

Training is deterministic: the corpus is generated from a fixed seed and the BPE
trainer is given the same text in the same order.
"""

from __future__ import annotations

import functools
import random
from typing import Iterator

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

__all__ = [
    "SPECIAL_TOKENS",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "DEFAULT_SYSTEM_PROMPT",
    "CHAT_TEMPLATE",
    "build_corpus",
    "train_tiny_tokenizer",
]

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen2.5-VL's special tokens, in Qwen's id order (appended after the BPE vocabulary).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Pieces: contractions | optional non-letter + letters | one digit | punctuation run
# (+ newlines) | newlines | trailing spaces | spaces.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2-style chat template (Jinja). Message content is either a string or a list of
# {"type": "image" | "video" | "text", ...} parts; the processor expands each image
# placeholder into the right number of <|image_pad|> tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# ------------------------------------------------------------------------- corpus

_COLOURS = "red green blue yellow orange purple pink brown black white gray grey dark light bright".split()
_SHAPES = (
    "circle square triangle rectangle ellipse star diamond cross ring disk box ball shape shapes "
    "object objects blob spot stripe line"
).split()
_ANIMALS = (
    "person man woman child boy girl people dog cat horse cow sheep bird duck fish car truck bus bike "
    "bicycle motorcycle boat airplane train elephant bear zebra giraffe monkey tiger lion rabbit mouse"
).split()
_RELATIONS = (
    "left right top bottom upper lower middle center centre near far behind front next beside above "
    "below between inside outside largest smallest biggest closest leftmost rightmost first second "
    "third last other"
).split()
_MOTION = (
    "moving moves move walking walks running runs jumping jumps turning turns rolling rolls sliding "
    "slides standing stands sitting sits staying stays still static fast slow slowly quickly towards "
    "away across around up down back forth enters leaves appears disappears stops starts"
).split()
_ADJECTIVES = "small medium large big tiny huge tall short long round thin wide striped spotted".split()
_TEMPLATES = (
    'Locate every object in the image that matches the query: "{q}".\n'
    "First reason about the scene and the query inside <think> </think>, then give the answer "
    "inside <answer> </answer> as a JSON list with one entry per matching object:\n"
    '[{{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y]}}]\n'
    "Coordinates are integer pixels of this {w}x{h} image. If no object matches, answer [].",
    'Please find "{q}" with bboxs and points. Compare the difference between objects and find the '
    "most closely matched objects. Output the thinking process in <think> </think> and the final "
    "answer in <answer> </answer> tags. Output the bbox(es) and point(s) inside the interested "
    "object(s) in JSON format.",
    'Query: "{q}".\nIs this frame a good keyframe for segmenting the object(s) described by the query, '
    "i.e. are they clearly visible in it?\nA. Yes, keep this frame.\nB. No, select another frame.\n"
    "Reason inside <think> </think>, then answer with exactly one letter, A or B, inside <answer> </answer>.",
    "You are given {n} frames sampled from a video, in temporal order, taken at timestamps {ts}.\n"
    'Query: "{q}".\nPick the timestamp where the target is best visible, then locate every target '
    "object in that frame with a bounding box in integer pixels of the {w}x{h} frame.\n"
    "Reason inside <think> </think>, then answer inside <answer> </answer> as JSON:\n"
    '{{"keyframe_timestamp": t, "bbox_2d_list": [[x1,y1,x2,y2], ...]}}',
    "Video description: {q} in a video with {n} frames. The target is {a} and it is {m}.",
    "point_2d is a point inside the object; neg_point_2d is a point just outside it "
    "(on the background close to the object).",
)
_THINKS = (
    'One object matches "{q}". It is {a}, at the {loc}.',
    '{n} objects match "{q}". Target 1 is {a}, at the {loc}. Target 2 is {a2}, at the {loc2}.',
    'No object in the image matches "{q}".',
    'The frame clearly shows "{q}". It is {a}, at the {loc}. Keep it.',
    'The frame does not show "{q}". Select another frame.',
    '"{q}" is best visible at timestamp {t}. It is {a}, at the {loc}.',
    "The image shows a {c} {s} on the {loc}, which is {m}. The query asks for the {c} {s}, so the answer "
    "is the {s} that is {m}. I should output its box and a point inside it.",
)
_LOCATIONS = (
    "upper left", "upper middle", "upper right", "middle left", "center", "middle right",
    "lower left", "lower middle", "lower right",
)


def _query(rng: random.Random) -> str:
    parts = [rng.choice(_COLOURS), rng.choice(_SHAPES + _ANIMALS)]
    if rng.random() < 0.5:
        parts.insert(0, rng.choice(["the", "a", "an", "that", "this"]))
    if rng.random() < 0.6:
        parts += [rng.choice(["that is", "which is", "who is", "", "is"]), rng.choice(_MOTION)]
    if rng.random() < 0.5:
        parts += [rng.choice(["to the", "on the", "at the", "in the", "from the"]), rng.choice(_RELATIONS)]
    if rng.random() < 0.3:
        parts += ["of", "the", rng.choice(_ADJECTIVES), rng.choice(_SHAPES + _ANIMALS)]
    return " ".join(p for p in parts if p)


def _answer_json(rng: random.Random, size: int) -> str:
    items = []
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        x1, y1 = rng.randrange(size), rng.randrange(size)
        x2, y2 = rng.randrange(x1, size), rng.randrange(y1, size)
        px, py = (x1 + x2) // 2, (y1 + y2) // 2
        item = f'{{"bbox_2d":[{x1},{y1},{x2},{y2}],"point_2d":[{px},{py}]'
        if rng.random() < 0.3:
            item += f',"neg_point_2d":[{max(0, x1 - 5)},{py}]'
        items.append(item + "}")
    sep = rng.choice([",", ", "])
    if rng.random() < 0.2:
        boxes = sep.join(f"[{rng.randrange(size)},{rng.randrange(size)},{rng.randrange(size)},{rng.randrange(size)}]"
                         for _ in range(rng.choice([1, 2])))
        return f'{{"keyframe_timestamp":{rng.randrange(200)},"bbox_2d_list":[{boxes}]}}'
    return "[" + sep.join(items) + "]"


def build_corpus(num_samples: int = 1500, seed: int = 0) -> Iterator[str]:
    """Deterministic training text: chat-formatted prompts and ``<think>``/``<answer>`` responses."""
    rng = random.Random(seed)
    for _ in range(num_samples):
        size = rng.choice([112, 224, 448, 560, 840])
        q = _query(rng)
        fill = dict(
            q=q, w=size, h=size, n=rng.randint(2, 8),
            ts=", ".join(str(rng.randrange(300)) for _ in range(rng.randint(2, 6))),
            a=rng.choice(_ADJECTIVES), a2=rng.choice(_ADJECTIVES), m=rng.choice(_MOTION),
            loc=rng.choice(_LOCATIONS), loc2=rng.choice(_LOCATIONS), t=rng.randrange(300),
            c=rng.choice(_COLOURS), s=rng.choice(_SHAPES),
        )
        prompt = rng.choice(_TEMPLATES).format(**fill)
        think = rng.choice(_THINKS).format(**fill)
        answer = rng.choice(["A", "B"]) if "exactly one letter" in prompt else _answer_json(rng, size)
        yield (
            f"system\n{DEFAULT_SYSTEM_PROMPT}\nuser\n{prompt}\nassistant\n"
            f"<think>{think}</think><answer>{answer}</answer>\n"
        )


# ---------------------------------------------------------------------- training


@functools.lru_cache(maxsize=4)
def _trained_backend_json(vocab_size: int, num_samples: int, seed: int) -> str:
    """Serialized trained tokenizer (cached: training is deterministic, so train once per process)."""
    return _build_backend(vocab_size, num_samples, seed).to_str()


def _build_backend(vocab_size: int, num_samples: int, seed: int) -> Tokenizer:
    """Train the byte-level BPE on the built-in corpus and append Qwen's special tokens."""
    num_learned = vocab_size - len(SPECIAL_TOKENS)
    if num_learned <= 256:
        raise ValueError(
            f"tokenizer vocab_size={vocab_size} is too small: it must exceed 256 byte tokens "
            f"+ {len(SPECIAL_TOKENS)} special tokens"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=num_learned,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(list(build_corpus(num_samples, seed)), trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def train_tiny_tokenizer(vocab_size: int = 1024, num_samples: int = 1500, seed: int = 0) -> PreTrainedTokenizerFast:
    """A deterministic Qwen2-style tokenizer with at most ``vocab_size`` tokens (specials included).

    Returns a ``PreTrainedTokenizerFast`` (eos ``<|im_end|>``, pad ``<|endoftext|>``, no bos,
    left padding, Qwen2 chat template) that ``save_pretrained`` / ``AutoTokenizer`` round-trip.
    """
    backend = Tokenizer.from_str(_trained_backend_json(vocab_size, num_samples, seed))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN)],
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if len(tokenizer) > vocab_size:  # cannot happen unless tokenizers changes its behaviour
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens > vocab_size {vocab_size}")
    return tokenizer
