"""The tag book: which tags each token carries in each span of time, and the filters it becomes."""

from __future__ import annotations

import logging

import msgspec
import numpy as np
import pytest

from cost_api.aggregation.tags import TagBook, parse_tags, wanted_of
from cost_api.config.tags import Since, TokenTagRule
from cost_api.errors import BadParameter

H = 3_600_000
NOV_1 = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def rule(**fields: object) -> TokenTagRule:
    return msgspec.convert(fields, TokenTagRule, dec_hook=lambda t, v: Since(v))


def test_since_cuts_time_and_the_latest_rule_wins() -> None:
    book = TagBook(
        [("t1", "pg_aaa", "search-bot", {"team": "ads", "env": "prod"})],
        [
            rule(token="t1", tags={"team": "search"}, since="2026-11-01"),
            rule(prefix="pg_a", tags={"team": "infra"}),  # no since: before every dated rule
        ],
    )
    assert book.bounds == [NOV_1 // H]
    before, after = book.epoch_at(NOV_1 - 1), book.epoch_at(NOV_1)
    assert book.tags("t1", before) == {"team": "infra", "env": "prod"}  # the rule wins over the column
    assert book.tags("t1", after) == {"team": "search", "env": "prod"}
    assert book.spans(NOV_1 - 2 * H, NOV_1 + H) == [(0, NOV_1 - 2 * H, NOV_1), (1, NOV_1, NOV_1 + H)]
    assert book.spans(NOV_1, NOV_1 + H) == [(1, NOV_1, NOV_1 + H)]


def test_name_patterns_and_tokens_only_a_rule_names() -> None:
    book = TagBook(
        [("t1", "p1", "ci-runner-7", {}), ("t2", "p2", "prod-api", {})],
        [rule(name="ci-*", tags={"env": "ci"}), rule(token="t9", tags={"team": "x"})],
    )
    assert book.universe == ["t1", "t2", "t9"]
    assert book.value("t1", "env", 0) == "ci"
    assert book.value("t2", "env", 0) == "(untagged)"
    assert book.value(None, "team", 0) == "(untagged)"
    assert book.values("team") == ["x", "(untagged)"]


def test_filters_become_token_lists_or_their_complement() -> None:
    book = TagBook([("a", "pa", None, {"team": "s"}), ("b", "pb", None, {"team": "t"}), ("c", "pc", None, {})], [])
    assert book.sql_params(wanted_of([("team", "s")]), 0) == {
        "tag_filter": 1, "tag_ids": ["a"], "tag_negate": 0, "tag_anonymous": 0,
    }  # fmt: skip
    # untagged passes: every token nobody listed (and anonymous rows), except the tagged ones that fail
    assert book.sql_params(wanted_of([("team", "(untagged)"), ("team", "s")]), 0) == {
        "tag_filter": 1, "tag_ids": ["b"], "tag_negate": 1, "tag_anonymous": 1,
    }  # fmt: skip


def test_per_cell_decides_once_per_epoch_and_code() -> None:
    book = TagBook([("a", "pa", None, {})], [rule(token="a", tags={"team": "s"}, since="2026-11-01")])
    seen: list[tuple[int, int]] = []

    def decide(epoch: int, code: int) -> int:
        seen.append((epoch, code))
        return epoch * 10 + code

    hours = np.array([NOV_1 // H - 1, NOV_1 // H - 1, NOV_1 // H, NOV_1 // H + 5])
    assert book.per_cell("x", hours, np.array([3, 3, 3, 4]), decide, np.int32).tolist() == [3, 3, 13, 14]
    assert sorted(seen) == [(e, c) for e in (0, 1) for c in range(5)]
    # kept: asked again, only the codes the vocabulary gained since are decided
    assert book.per_cell("x", hours[:1], np.array([6]), decide, np.int32).tolist() == [6]
    assert sorted(seen[10:]) == [(0, 5), (0, 6), (1, 5), (1, 6)]


def test_unknown_keys_name_the_parameter() -> None:
    book = TagBook([("a", "pa", None, {"team": "s"})], [])
    with pytest.raises(BadParameter) as raised:
        book.check("owner", "group_by")
    assert (raised.value.field, raised.value.message) == ("group_by", "unknown tag key 'owner'; known keys: team")


def test_a_malformed_column_is_untagged_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    warned: set[str] = set()
    with caplog.at_level(logging.WARNING, "cost_api.aggregation.tags"):
        assert parse_tags("tok_123456", "{not json", warned) == {}
        assert parse_tags("tok_123456", '["a"]', warned) == {}
    assert len(caplog.records) == 1 and "tok_12…" in caplog.text
    assert parse_tags("t", '{"team": "s", "n": 5}', warned) == {}
    assert parse_tags("t", '{"team": "s", "(x)": "y"}', warned) == {"team": "s"}  # a key no filter could name


def test_sql_params_are_kept_per_epoch_and_filter() -> None:
    book = TagBook([("a", "pa", None, {"team": "s"}), ("b", "pb", None, {"team": "t"})], [])
    first = book.sql_params(wanted_of([("team", "s")]), 0)
    assert book.sql_params(wanted_of([("team", "s")]), 0) is first  # no second pass over the tokens
    assert book.sql_params(wanted_of([("team", "t")]), 0)["tag_ids"] == ["b"]
