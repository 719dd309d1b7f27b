"""Text read from data files: invalid code points are replaced, never passed on.

Text that cannot be written as UTF-8 is a lone surrogate (U+D800..U+DFFF). It
reaches Python strings in two ways: a JSON escape such as ``"\\udc80"`` (valid
JSON, invalid text), or bytes that are not UTF-8, which :func:`data.io.read_json`
and :func:`data.build.load_samples` decode with ``errors="surrogateescape"``
(each bad byte becomes one surrogate) instead of rejecting the whole file.
:func:`clean_text` replaces every such code point with U+FFFD (the replacement
character), so one bad byte costs one character, not the file or the build.
"""

from __future__ import annotations

import re
from typing import Any

#: The character that replaces an invalid code point.
REPLACEMENT = "\ufffd"
_INVALID = re.compile("[\ud800-\udfff]")

__all__ = ["REPLACEMENT", "clean_text", "clean_strings", "is_valid_text"]


def is_valid_text(text: str) -> bool:
    """True when ``text`` can be encoded as UTF-8 (holds no lone surrogate)."""
    return _INVALID.search(text) is None


def clean_text(text: str) -> tuple[str, int]:
    """``(text with every invalid code point replaced by U+FFFD, number replaced)``."""
    return _INVALID.subn(REPLACEMENT, text)


def clean_strings(value: Any) -> tuple[Any, int]:
    """:func:`clean_text` applied to every string (dict keys included) of a JSON value.

    Returns ``(cleaned value, total replaced)``; the value is returned unchanged (the same
    object) when nothing was replaced.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        items = [clean_strings(v) for v in value]
        count = sum(n for _, n in items)
        return ([v for v, _ in items] if count else value), count
    if isinstance(value, dict):
        pairs = [(clean_strings(k), clean_strings(v)) for k, v in value.items()]
        count = sum(nk + nv for (_, nk), (_, nv) in pairs)
        return ({k: v for (k, _), (v, _) in pairs} if count else value), count
    return value, 0
