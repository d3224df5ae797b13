"""Control characters in text from outside (paths, query parameters, request bodies, whatever ends up
in a log line): refused as input, escaped in the log.

No value the API takes (a time, a zone, a duration, a provider, model, endpoint or token) holds a
control character, and Postgres cannot even store U+0000 in text: a parameter with one is a 400
naming it. Tab, line feed and carriage return are whitespace, not refused (JSON text holds them).
A log line shows every control character as its escape (`\\x00`, `\\n`, `\\x1b`), so that no value
can end a line early, forge another one or drive the terminal that shows it.
"""

from __future__ import annotations

import re

from cost_api.errors import BadParameter

_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ESCAPED = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1
_ESCAPED_BUT_LINE_FEEDS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def has_control(value: str) -> bool:
    return _REFUSED.search(value) is not None


def refuse_control(field: str, value: str) -> None:
    """A 400 naming `field` if `value` holds a control character other than tab, LF or CR."""
    found = _REFUSED.search(value)
    if found is not None:
        raise BadParameter(
            field, f"contains the control character U+{ord(found.group()):04X}; no value the API takes has one"
        )


def escape(text: str, *, keep_line_feeds: bool = False) -> str:
    """`text` with each control character written as its Python escape; line feeds kept only where
    asked (the lines of a traceback)."""
    pattern = _ESCAPED_BUT_LINE_FEEDS if keep_line_feeds else _ESCAPED
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
