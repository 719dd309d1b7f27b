"""Stop strings on token streams: exact byte-level matching and response truncation.

A stop string (e.g. ``</answer>``) may span several tokens, and the token that
completes it may carry extra characters. Byte-level BPE tokens map to fixed byte
strings independent of context, so each token's bytes are looked up once and a stop
string is found by scanning a short rolling byte tail: exact, and cheap enough to run
at every decoding step. Truncation keeps every token up to and including the one that
completes the stop string (or the first eos / stop token), as vLLM does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

__all__ = ["byte_level_decoder_map", "token_bytes_table", "StopStringMatcher", "TruncatedResponse", "truncate_response"]


def byte_level_decoder_map() -> dict[str, int]:
    """Character -> byte of the GPT-2 / Qwen byte-level alphabet.

    Printable bytes ``!``..``~``, ``¡``..``¬`` and ``®``..``ÿ`` stand for themselves; the
    other 68 bytes are shifted to code points 256, 257, ... in increasing byte order.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    mapping = {chr(b): b for b in printable}
    shift = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + shift)] = b
            shift += 1
    return mapping


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    stack = [decoder]
    while stack:
        d = stack.pop()
        if d.get("type") == "ByteLevel":
            return True
        stack.extend(d.get("decoders", []) or [])
    return False


def token_bytes_table(tokenizer, size: int | None = None) -> list[bytes]:
    """UTF-8 bytes of every token id ``0 .. size-1`` (``size`` defaults to ``len(tokenizer)``;
    ids without a token, e.g. a model's padded vocabulary, map to ``b""``)."""
    size = len(tokenizer) if size is None else size
    table = [b""] * size
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    byte_map = byte_level_decoder_map() if _is_byte_level(tokenizer) else None
    for tid in range(min(size, len(tokenizer))):
        if tid in added:
            table[tid] = added[tid].encode("utf-8")
            continue
        tok = tokenizer.convert_ids_to_tokens(tid)
        if tok is None:
            continue
        if byte_map is not None and all(ch in byte_map for ch in tok):
            table[tid] = bytes(byte_map[ch] for ch in tok)
        else:
            table[tid] = tokenizer.decode([tid]).encode("utf-8")
    return table


class StopStringMatcher:
    """Finds where a stop string is first completed in a token stream."""

    def __init__(self, token_bytes: Sequence[bytes], stop_strings: Sequence[str]):
        self.token_bytes = token_bytes
        self.stops = [s.encode("utf-8") for s in stop_strings if s]
        self.tail_len = max((len(s) for s in self.stops), default=1) - 1

    def __bool__(self) -> bool:
        return bool(self.stops)

    def _bytes(self, token_id: int) -> bytes:
        return self.token_bytes[token_id] if 0 <= token_id < len(self.token_bytes) else b""

    def feed(self, tail: bytes, token_id: int) -> tuple[bool, bytes]:
        """Append one token to a stream whose last bytes are ``tail``.

        Returns (a stop string ends inside this token, the new tail).
        """
        buf = tail + self._bytes(token_id)
        hit = any(s in buf for s in self.stops)
        return hit, (buf[-self.tail_len:] if self.tail_len else b"")


@dataclass
class TruncatedResponse:
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    stopped_by_string: bool


def truncate_response(
    token_ids: Sequence[int], stop_token_ids: Sequence[int], matcher: StopStringMatcher | None
) -> TruncatedResponse:
    """Cut a generated token row after the first eos / stop token or completed stop string
    (that token included). Without either, the row is kept whole with reason ``"length"``."""
    stops = set(int(t) for t in stop_token_ids)
    tail = b""
    for i, t in enumerate(token_ids):
        t = int(t)
        if t in stops:
            return TruncatedResponse([int(x) for x in token_ids[: i + 1]], "stop", False)
        if matcher:
            hit, tail = matcher.feed(tail, t)
            if hit:
                return TruncatedResponse([int(x) for x in token_ids[: i + 1]], "stop", True)
    return TruncatedResponse([int(x) for x in token_ids], "length", False)
