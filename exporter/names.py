"""Model and version names: the one rule for which are accepted, wherever a name enters.

A name is addressable once it is accepted: ``GET``, ``PUT .../reference`` and ``DELETE`` take it
as a path segment, percent-encoded (``/v1/models/betrug%20pr%C3%BCfung``). So a name may hold
any *printable* character, in Unicode's sense, except ``/`` (which would split the segment):
letters, marks, digits, punctuation and symbols (categories ``L*``, ``M*``, ``N*``, ``P*``,
``S*``) and the ASCII space. Refused, because no person means them or a reader cannot see them:

* control characters (``Cc``: NUL, tab, newline, DEL, C1 controls) and format characters
  (``Cf``: zero-width space and joiners, the byte order mark, soft hyphen, bidirectional
  embeddings, overrides and isolates), so that ``"fraud\\u200b"`` never sits beside
  ``"fraud"``;
* surrogates, private-use and unassigned code points (``Cs``, ``Co``, ``Cn``, as of the
  running Python's Unicode database);
* separators other than the ASCII space (``Zs``, ``Zl``, ``Zp``: no-break and ideographic
  spaces, which look like a space and are not one, line and paragraph separators);
* a name that is empty, only whitespace, or starts or ends with a space (``"fraud "`` would look
  like ``"fraud"`` in every listing);
* ``.`` and ``..``, which HTTP clients remove from paths as dot segments;
* a name not in normalization form NFC: ``"e\\u0301"`` and ``"\\u00e9"`` render the same, and
  only one of the two spellings can be meant.

That set is exactly what :meth:`str.isprintable` refuses, which checks it at C speed;
``tests/test_names.py`` checks the equivalence against :func:`unicodedata.category` for every
code point. Results are cached (ingest checks the name of every batch), bounded by
:data:`CACHE_SIZE` names. Lengths are bounded elsewhere (``limits.max_name_length``).

>>> name_problem("betrug prüfung") is None, name_problem("team/fraud")
(True, "it contains '/', which would split the path /v1/models/{model}")
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Final

from exporter.errors import Reason, RejectedInput

#: What a name may hold, for the messages of every refusal.
ALLOWED: Final = (
    "a name may hold any printable Unicode characters (letters, marks, digits, punctuation, "
    "symbols, spaces inside) except '/', in NFC, and is not '.' or '..'"
)
#: Distinct names whose verdict is remembered.
CACHE_SIZE: Final = 4096


@lru_cache(maxsize=CACHE_SIZE)
def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a model or version name, or None if nothing is."""
    if not name.strip():
        return "it is empty or only whitespace"
    if name in (".", ".."):
        return f"{name!r} is a dot segment, which HTTP clients remove from paths"
    if "/" in name:
        return "it contains '/', which would split the path /v1/models/{model}"
    if not name.isprintable():
        char = next(c for c in name if not c.isprintable())
        what = unicodedata.name(char, unicodedata.category(char))
        return f"it contains U+{ord(char):04X} ({what}), which is not a printable character"
    if name != name.strip():
        return "it starts or ends with a space"
    if not unicodedata.is_normalized("NFC", name):
        return (
            f"it is not in Unicode normalization form NFC; send "
            f"{unicodedata.normalize('NFC', name)!r}"
        )
    return None


def check_name(name: str, field: str) -> None:
    """Raise :class:`~exporter.errors.RejectedInput` (``invalid_name``, 422) naming ``field``
    and the value when ``name`` is not a valid model or version name."""
    problem = name_problem(name)
    if problem is not None:
        raise RejectedInput(
            Reason.INVALID_NAME, f"not a valid name: {problem}; {ALLOWED}", field=field, value=name
        )
