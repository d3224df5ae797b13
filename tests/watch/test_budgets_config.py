"""A budget names exactly one of `endpoint`, `token` or `tag` (docs/budgets.md); a broken entry stops
the start with a message naming it."""

from __future__ import annotations

import pytest

from cost_api.config import ConfigError, Settings, load_settings


def settings_with(budgets: str) -> Settings:
    return load_settings(environ={"COST_API_BUDGETS": budgets, "COST_API_DATABASE_URL": "sqlite:///x.db"})


def test_each_kind_of_subject() -> None:
    settings = settings_with(
        "[{endpoint: /x, limit_usd: 5, period: day}, {token: sk-live-a1b…, limit_usd: 5, period: week},"
        " {token: tok_0001, limit_usd: 5, period: month}, {tag: 'team:search', limit_usd: 50, period: month}]"
    )
    assert [b.subject for b in settings.budgets] == [
        ("endpoint", "/x"),
        ("token", "sk-live-a1b"),  # a displayed prefix, with or without its "…"
        ("token", "tok_0001"),
        ("tag", "team:search"),
    ]


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ("[{limit_usd: 5, period: day}]", "budgets[0]: give exactly one of endpoint, token or tag (got none)"),
        (
            "[{endpoint: /x, limit_usd: 5, period: day}, {endpoint: /x, tag: 'team:a', limit_usd: 5, period: day}]",
            "budgets[1]: give exactly one of endpoint, token or tag (got endpoint, tag)",
        ),
        (
            "[{tag: team, limit_usd: 5, period: day}]",
            "budgets[0]: tag: expected key:value, like team:search; got 'team'",
        ),
        (
            "[{tag: 'team:', limit_usd: 5, period: day}]",
            "budgets[0]: tag: expected key:value, like team:search; got 'team:'",
        ),
        (
            "[{tag: 'te am:x', limit_usd: 5, period: day}]",
            "budgets[0]: tag: expected key:value, like team:search; got 'te am:x'",
        ),
        (
            "[{tag: 'team:(untagged)', limit_usd: 5, period: day}]",
            "budgets[0]: tag: (untagged) is no tag value; untagged tokens are in no tag budget",
        ),
        ("[{token: ' ', limit_usd: 5, period: day}]", "budgets[0]: token: blank"),
        (
            "[{token: anonymous, limit_usd: 5, period: day}]",
            "budgets[0]: token: anonymous calls carry no token; cap them with an endpoint budget",
        ),
        ("[{tag: 'team:a', limit_usd: 0, period: day}]", "budgets[0].limit_usd: Expected `float` > 0.0"),
        ("[{team: a, limit_usd: 5, period: day}]", "budgets[0].team: unknown key"),
    ],
)
def test_broken_budgets_stop_the_start(budgets: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_with(budgets)
    assert str(raised.value) == message
