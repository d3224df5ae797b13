"""Ollama's usage (native API): the counts of the object with `done: true`, a body or a stream's last."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cost_api.usage.base import State, count, set_model

__all__ = ["observe_ollama"]


def observe_ollama(provider: str, doc: Mapping[str, Any], state: State) -> None:
    set_model(state, doc.get("model"))
    if doc.get("done") is not True:
        return
    # Ollama omits zero counts (e.g. prompt_eval_count on a fully cached prompt).
    state.counts = (
        count(provider, doc, "prompt_eval_count", "$"),
        count(provider, doc, "eval_count", "$"),
        0,
        0,
    )
    state.final = True
