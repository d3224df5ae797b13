"""Control characters in text from outside (paths, query parameters, request bodies): refused.

No value the API takes (a time, a zone, a duration, a provider, model, endpoint or token) holds a
control character, and Postgres cannot even store U+0000 in text: a parameter with one is a 400
naming it. Tab, line feed and carriage return are whitespace, not refused (JSON text holds them).
"""

from __future__ import annotations

import re

from .errors import BadParameter

_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control(value: str) -> bool:
    return _REFUSED.search(value) is not None


def refuse_control(field: str, value: str) -> None:
    """A 400 naming `field` if `value` holds a control character other than tab, LF or CR."""
    found = _REFUSED.search(value)
    if found is not None:
        raise BadParameter(
            field, f"contains the control character U+{ord(found.group()):04X}; no value the API takes has one"
        )
