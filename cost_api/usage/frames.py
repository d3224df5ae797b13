"""The JSON documents in what a stream is fed: SSE lines and events, NDJSON lines, and the pieces of
a JSON array streamed without SSE (Gemini without `alt=sse`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from cost_api.usage.base import UsageError, mapping

__all__ = ["JsonArray", "decode", "sse"]


def decode(provider: str, raw: str | bytes, what: str) -> Mapping[str, Any]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise UsageError(provider, what, f"not valid JSON: {exc}") from None
    return mapping(provider, doc, what)


_SSE_FIELDS = ("data", "event", "id", "retry")


def sse(provider: str, text: str) -> tuple[list[Mapping[str, Any]], bool]:
    """The JSON documents in SSE text, and whether some of the text could not be read.

    The text is one line or whole events (`event:` and `data:` lines, blank lines between events):
    an event's `data:` lines are joined with newlines into one payload, as the SSE spec says.
    `event:`, `id:`, `retry:`, comments, blank lines and `[DONE]` (with or without `data:`) carry
    nothing to read; a bare `{...}` line is an event's payload or one of Ollama's NDJSON objects.
    Any other line is text this stream cannot read (a piece of a frame, an unknown field): the
    caller marks the result inexact.
    """
    docs: list[Mapping[str, Any]] = []
    unread = False
    data: list[str] = []

    def end_event() -> None:
        payload = "\n".join(data).strip()
        data.clear()
        if payload and payload != "[DONE]":
            docs.append(decode(provider, payload, "data"))

    for line in text.splitlines():
        line = line.strip()
        field = line.partition(":")[0]
        if not line:
            end_event()
        elif field == "data":
            data.append(line.partition(":")[2])
        elif line.startswith("{"):
            end_event()
            docs.append(decode(provider, line, "line"))
        elif not (line.startswith(":") or field in _SSE_FIELDS or line == "[DONE]"):
            unread = True
    end_event()
    return docs, unread


_IN_STRING = re.compile(r'[\\"]')
_IN_ELEMENT = re.compile(r'[\[\]{}"]')


class JsonArray:
    """The elements of a JSON array that arrives in pieces split anywhere.

    Gemini's `streamGenerateContent` without `alt=sse` streams one array of response objects,
    `[{...},\r\n{...}]`. Each complete element is handed back as text; `lost` tells whether
    text outside any element was not part of the array, or an element was left unfinished.
    """

    __slots__ = ("_buffer", "_closed", "_depth", "_in_string", "_pos", "_start", "_stray")

    def __init__(self) -> None:
        self._buffer = ""  # from the start of the unfinished element, if any
        self._pos = 0  # scanned up to here in _buffer
        self._start = 0  # where the unfinished element starts in _buffer
        self._depth = 0  # 0 outside the array, 1 between its elements, 2+ inside one
        self._in_string = False
        self._closed = False
        self._stray = False  # text where the array allows none

    @property
    def lost(self) -> bool:
        return self._stray or self._depth > 1

    def feed(self, text: str) -> list[str]:
        buffer, i, elements = self._buffer + text, self._pos, []
        while i < len(buffer):
            if self._depth > 1:
                found = (_IN_STRING if self._in_string else _IN_ELEMENT).search(buffer, i)
                if found is None:
                    i = len(buffer)
                    break
                i, char = found.start(), found.group()
                if char == "\\":
                    i += 2  # the escaped character, which may be in the next piece
                    continue
                if char == '"':
                    self._in_string = not self._in_string
                elif char in "{[":
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        elements.append(buffer[self._start : i + 1])
            else:
                char = buffer[i]
                if char in "{[" and self._depth == 1:
                    self._depth, self._start = 2, i
                elif char == "[" and self._depth == 0 and not self._closed:
                    self._depth = 1
                elif char == "]" and self._depth == 1:
                    self._depth, self._closed = 0, True
                elif not (char.isspace() or (char == "," and self._depth == 1)):
                    self._stray = True
            i += 1
        if self._depth > 1:  # keep only the unfinished element
            self._buffer, self._pos, self._start = buffer[self._start :], i - self._start, 0
        else:
            self._buffer, self._pos = "", 0
        return elements
