"""The pricing engine on its own: the shipped table, matching, history, cliffs, overrides, validation.

Every dollar figure is worked out by hand in the comment beside it (rates are USD per 1M tokens, so
cost = sum(tokens x rate) / 1e6) and compared with a literal, never with the engine's own output.
"""

from __future__ import annotations

import re
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from cost_api.pricing.file import MAX_THRESHOLDS, PricingError
from cost_api.pricing.rates import Rates
from cost_api.pricing.reports import EXCEPTIONS, check_report, diff_genai_prices, load_exceptions, resolve_report
from cost_api.pricing.table import Entry, PriceTable, load_table
from cost_api.resources import builtin_pricing

REFERENCE = Path(__file__).parents[1] / "fixtures" / "provider-prices.yaml"  # the contract's reference, vendored
PROVIDERS = ("anthropic", "openai", "google", "cohere", "mistral", "groq", "together")


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_table(builtin_pricing())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def entry(table: PriceTable, provider: str, model: str) -> Entry:
    found = table.match(provider, model)
    assert found is not None, f"{provider}/{model} is unpriced"
    return found


# --------------------------------------------------------------------------- the shipped table


def test_shipped_table_loads(table: PriceTable) -> None:
    assert table.version == "2026-12-04"
    assert table.thresholds == (100_000, 128_000, 200_000, 272_000)
    assert len(table.thresholds) <= MAX_THRESHOLDS
    assert {e.source for e in table.entries} == {"builtin"}
    keys = [e.key.lower() for e in table.entries]
    assert len(keys) == len(set(keys))
    assert entry(table, "ollama", "anything").key == "ollama/*"


# ids the reference lists under an alias whose history they do not share: their own entries
OWN_ENTRY = {
    ("openai", "gpt-4o-2024-08-06"): "openai/gpt-4o-2024-08-06",  # 2.50/10 from launch, unlike the alias
    ("openai", "gpt-4o-2024-11-20"): "openai/gpt-4o-2024-11-20",
    ("anthropic", "claude-fable-5-1"): "anthropic/claude-fable-5-1",  # cache_read 0.25, per the reference
    ("anthropic", "claude-mythos-5-1"): "anthropic/claude-mythos-5-1",
    # the -latest aliases have histories (0.10/0.30 before 2026-03-16; 2/6 before 2025-12-02)
    ("mistral", "mistral-small-2603"): "mistral/mistral-small-2603",
    ("mistral", "mistral-large-2512"): "mistral/mistral-large-2512",
    ("mistral", "mistral-large-3"): "mistral/mistral-large-2512",
}
UNPRICED = {("cohere", "command-a-plus"), ("cohere", "command-a-plus-05-2026")}  # litellm 0/0 = unknown
# where a verified price history moves today's price away from the reference's (litellm 1.80.0) figure:
# Mistral cut Large 2 from 3/9 to 2/6 on 2024-09-17 (genai-prices 0.2.3 prices it at 2/6)
HISTORY_CURRENT = {
    ("mistral", "mistral-large-2407"): Rates(input=2, output=6, cache_read=2, cache_write=2, cache_write_1h=2)
}


def reference_models() -> list[tuple[str, dict]]:
    providers = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))["providers"]
    return [(p, m) for p in PROVIDERS for m in providers[p]]


def test_every_reference_model_and_alias_resolves(table: PriceTable) -> None:
    models = reference_models()
    assert len(models) > 80
    for provider, ref in models:
        for name in (ref["id"], *ref.get("aliases", ())):
            found = table.match(provider, name)
            if (provider, name) in UNPRICED or (provider, ref["id"]) in UNPRICED:
                assert found is None, name
            elif (provider, name) in OWN_ENTRY:
                assert found is not None and found.key == OWN_ENTRY[(provider, name)], name
            else:
                assert found is not None, f"{provider}/{name} is unpriced"
                assert found.key == f"{provider}/{ref['id']}", name


def test_current_prices_equal_the_reference(table: PriceTable) -> None:
    """The reference's numbers are the ones in force on its date (2026-11-29), at base size."""
    day = date(2026, 11, 29)
    for provider, ref in reference_models():
        if (provider, ref["id"]) in UNPRICED:
            continue
        rates = entry(table, provider, ref["id"]).rates(day, 0)
        cache_write = ref.get("cache_write", ref["input"])
        expected = HISTORY_CURRENT.get((provider, ref["id"])) or Rates(
            input=ref["input"],
            output=ref["output"],
            cache_read=ref.get("cache_read", ref["input"]),
            cache_write=cache_write,
            cache_write_1h=ref.get("cache_write_1h", cache_write),
        )
        assert rates == expected, f"{provider}/{ref['id']}"
        tiers = ref.get("long_context_tiers")
        if tiers:
            tier = entry(table, provider, ref["id"]).price_at(day).above
            assert tier is not None and tier.input_tokens == tiers[0]["threshold_input_tokens"]
            assert (tier.input, tier.output) == (tiers[0]["input"], tiers[0]["output"])


# --------------------------------------------------------------------------- dollars


def test_spec_worked_example(table: PriceTable) -> None:
    sonnet = entry(table, "anthropic", "claude-3-5-sonnet")
    # 3 x 14320 + 15 x 642 = 42960 + 9630 = 52590 per-million units -> $0.05259
    assert round(table.cost(sonnet, at("2025-03-01T12:00"), 14320, 642, 0, 0), 6) == 0.05259
    # the same call answered by the response cache saves the same amount
    assert round(table.saved(sonnet, at("2025-03-01T12:00"), 14320, 642), 6) == 0.05259


def test_anthropic_cache_reads_and_writes(table: PriceTable) -> None:
    sonnet = entry(table, "anthropic", "claude-sonnet-4-5-20250929")
    # 3 x 1200 + 15 x 412 + 0.30 x 30000 + 3.75 x 1800 = 3600 + 6180 + 9000 + 6750 = 25530 -> $0.02553
    cost = table.cost(sonnet, at("2026-01-05T08:00"), 1200, 412, 30000, 1800)
    assert round(cost, 6) == 0.02553


def test_anthropic_one_hour_cache_writes(table: PriceTable) -> None:
    """cache_write_1h tokens are the part of cache_write written for an hour: 2x input, not 1.25x."""
    sonnet = entry(table, "anthropic", "claude-sonnet-4-5-20250929")
    when = at("2026-01-05T08:00")
    # 1800 written, 1000 of them for an hour: 800 at 3.75, 1000 at 6
    # 3 x 1200 + 15 x 412 + 0.30 x 30000 + 3.75 x 800 + 6 x 1000 = 3600 + 6180 + 9000 + 3000 + 6000
    # = 27780 -> $0.02778 (all at the 5-minute rate it was 25530 -> $0.02553, 8.1% low)
    assert round(table.cost(sonnet, when, 1200, 412, 30000, 1800, 1000), 6) == 0.02778
    # past the 200k cliff the 1-hour rate doubles too: 6 x 150000 + 22.5 x 100 + 0.60 x 60000 + 7.5 x 0
    # + 12 x 1000 = 900000 + 2250 + 36000 + 12000 = 950250 -> $0.95025
    assert round(table.cost(sonnet, when, 150000, 100, 60000, 1000, 1000), 6) == 0.95025
    # an entry without a 1-hour rate bills those writes at its cache_write (here: absent too, so input)
    mini = entry(table, "openai", "gpt-4o-mini")
    assert mini.rates(date(2026, 1, 5), 0).cache_write_1h == 0.15


def test_service_tiers(table: PriceTable) -> None:
    o3 = entry(table, "openai", "o3")
    when = at("2026-11-10T10:00")
    # 1000 input, 1000 output, 1000 cached. standard: 2 x 1000 + 8 x 1000 + 0.50 x 1000 = 10500 -> $0.0105
    assert round(table.cost(o3, when, 1000, 1000, 1000, 0), 6) == 0.0105
    # batch (no cache rate: cached at the batch input): 1 x 1000 + 4 x 1000 + 1 x 1000 = 6000 -> $0.006
    assert round(table.cost(o3, when, 1000, 1000, 1000, 0, tier="batch"), 6) == 0.006
    # flex: 1 x 1000 + 4 x 1000 + 0.25 x 1000 = 5250 -> $0.00525
    assert round(table.cost(o3, when, 1000, 1000, 1000, 0, tier="flex"), 6) == 0.00525
    # priority: 3.5 x 1000 + 14 x 1000 + 0.875 x 1000 = 18375 -> $0.018375
    assert round(table.cost(o3, when, 1000, 1000, 1000, 0, tier="priority"), 6) == 0.018375
    # "standard", OpenAI's "default" and blank are the standard tier
    for tier in ("standard", "default", " ", None):
        assert round(table.cost(o3, when, 1000, 1000, 1000, 0, tier=tier), 6) == 0.0105
    # before the 2025-06-10 cut o3 has no tier rates: standard, and said so
    rates, standard = o3.tier_rates(date(2025, 6, 1), 0, "batch")
    assert standard and (rates.input, rates.output) == (10, 40)
    # gpt-5-nano has no priority rate; an unknown tier has none either
    nano = entry(table, "openai", "gpt-5-nano")
    assert nano.tier_rates(date(2026, 11, 10), 0, "priority") == (nano.rates(date(2026, 11, 10), 0), True)
    assert nano.tier_rates(date(2026, 11, 10), 0, "scale")[1]
    assert nano.tier_rates(date(2026, 11, 10), 0, "flex")[1] is False
    # past the long-context cliff a tier's rates are unknown: the standard `above` rates, said so
    gpt54 = entry(table, "openai", "gpt-5.4")
    rates, standard = gpt54.tier_rates(date(2026, 11, 10), table.size_class(300_000), "batch")
    assert standard and (rates.input, rates.output) == (5, 22.5)
    # Anthropic batch: half of every standard rate, cache writes included
    # 1.5 x 1000 + 7.5 x 1000 + 0.15 x 1000 + 1.875 x 1000 + 3 x 1000 = 14025 -> $0.014025
    sonnet = entry(table, "anthropic", "claude-sonnet-4-5")
    assert round(table.cost(sonnet, when, 1000, 1000, 1000, 2000, 1000, tier="batch"), 6) == 0.014025


def test_openai_cached_tokens(table: PriceTable) -> None:
    mini = entry(table, "openai", "gpt-4o-mini-2024-07-18")
    # usage: prompt_tokens 1200 of which cached 1024 -> uncached 176; completion 300
    # 0.15 x 176 + 0.075 x 1024 + 0.60 x 300 = 26.4 + 76.8 + 180 = 283.2 -> $0.0002832
    assert round(table.cost(mini, at("2025-10-01T00:00"), 176, 300, 1024, 0), 7) == 0.0002832
    # OpenAI has no cache-write fee: absent cache_write bills at input (and the gateway logs 0 anyway)
    assert mini.rates(date(2025, 10, 1), 0).cache_write == 0.15


def test_gemini_long_context_cliff(table: PriceTable) -> None:
    pro = entry(table, "google", "gemini-2.5-pro")
    when = at("2025-11-01T10:00")
    # input 150000 + cache 50000 = 200000: not above 200000 -> base rates
    # 1.25 x 150000 + 0.125 x 50000 + 10 x 2000 = 187500 + 6250 + 20000 = 213750 -> $0.21375
    assert round(table.cost(pro, when, 150000, 2000, 50000, 0), 6) == 0.21375
    # input 150000 + cache 60000 = 210000 > 200000 -> the WHOLE request at the tier rates
    # 2.50 x 150000 + 0.25 x 60000 + 15 x 2000 = 375000 + 15000 + 30000 = 420000 -> $0.42
    assert round(table.cost(pro, when, 150000, 2000, 60000, 0), 6) == 0.42
    # a cache hit's avoided prompt decides the cliff too: 2.5 x 200001 + 15 x 1000 = 515002.5 -> $0.5150025
    assert round(table.saved(pro, when, 200001, 1000), 7) == 0.5150025


def test_size_classes(table: PriceTable) -> None:
    assert [table.size_class(n) for n in (0, 100000, 100001, 128001, 200000, 200001, 272001)] == [
        0,
        0,
        1,
        2,
        2,
        3,
        4,
    ]
    day = date(2026, 11, 29)
    haiku = entry(table, "anthropic", "claude-haiku-5-5")  # cliff at 100000 = thresholds[0]
    assert haiku.rates(day, 0).input == 0.10
    assert haiku.rates(day, 1).input == 0.50
    pro = entry(table, "google", "gemini-2.5-pro")  # cliff at 200000 = thresholds[2]
    assert pro.rates(day, 2).input == 1.25
    assert pro.rates(day, 3).input == 2.5
    assert pro.rates(day, 4).input == 2.5


def test_o3_price_cut_applies_to_the_alias_and_its_snapshot(table: PriceTable) -> None:
    for name in ("o3", "o3-2025-04-16"):
        o3 = entry(table, "openai", name)
        assert o3.key == "openai/o3"
        # before 2025-06-10: 10 x 1000 + 40 x 1000 + 2.5 x 1000 = 52500 -> $0.0525
        assert round(table.cost(o3, at("2025-06-09T23:59:59"), 1000, 1000, 1000, 0), 6) == 0.0525
        # from 2025-06-10 00:00 UTC: 2 x 1000 + 8 x 1000 + 0.5 x 1000 = 10500 -> $0.0105
        assert round(table.cost(o3, at("2025-06-10T00:00:00"), 1000, 1000, 1000, 0), 6) == 0.0105
    # the price day is the UTC day: 01:00 at +02:00 is still 2025-06-09 in UTC
    o3 = entry(table, "openai", "o3")
    local = datetime(2025, 6, 10, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert round(table.cost(o3, local, 1000, 1000, 1000, 0), 6) == 0.0525


def test_claude_sonnet_5_stays_at_2_10(table: PriceTable) -> None:
    sonnet5 = entry(table, "anthropic", "claude-sonnet-5")
    # the 2026-09-01 rise was cancelled: 2 x 1000 + 10 x 1000 + 0.20 x 1000 = 12200 -> $0.0122 on both sides
    for when in ("2026-08-31T23:00", "2026-09-01T01:00", "2026-11-20T12:00"):
        assert round(table.cost(sonnet5, at(when), 1000, 1000, 1000, 0), 6) == 0.0122


def test_long_context_surcharge_removed_on_a_date(table: PriceTable) -> None:
    sonnet46 = entry(table, "anthropic", "claude-sonnet-4-6")
    # 2026-03-12, 250000 input > 200000: 6 x 250000 + 22.5 x 1000 = 1522500 -> $1.5225
    assert round(table.cost(sonnet46, at("2026-03-12T12:00"), 250000, 1000, 0, 0), 6) == 1.5225
    # 2026-03-13 on, flat: 3 x 250000 + 15 x 1000 = 765000 -> $0.765
    assert round(table.cost(sonnet46, at("2026-03-13T12:00"), 250000, 1000, 0, 0), 6) == 0.765


def test_gpt_4o_alias_and_dated_snapshot_in_september_2024(table: PriceTable) -> None:
    alias = entry(table, "openai", "gpt-4o")
    snapshot = entry(table, "openai", "gpt-4o-2024-08-06")
    assert (alias.key, snapshot.key) == ("openai/gpt-4o", "openai/gpt-4o-2024-08-06")
    september = at("2024-09-15T12:00")
    # alias: 5 x 1000 + 15 x 1000 = 20000 -> $0.02
    assert round(table.cost(alias, september, 1000, 1000, 0, 0), 6) == 0.02
    # snapshot: 2.5 x 1000 + 10 x 1000 = 12500 -> $0.0125
    assert round(table.cost(snapshot, september, 1000, 1000, 0, 0), 6) == 0.0125
    # from 2024-10-02 the alias points at the snapshot's price: $0.0125
    assert round(table.cost(alias, at("2024-10-02T00:00"), 1000, 1000, 0, 0), 6) == 0.0125


# The models issue 17 found unpriced, as a gateway logs them: 1,000 input and 1,000 output tokens,
# so cost = (input rate + output rate) x 1000 / 1e6.
@pytest.mark.parametrize(
    ("provider", "model", "key", "when", "dollars"),
    [
        ("openai", "gpt-6.1-terra", "openai/gpt-6.1-terra", "2026-11-20", 0.006),  # 1 + 5
        ("openai", "gpt-5-pro-2025-10-06", "openai/gpt-5-pro", "2026-11-20", 0.135),  # 15 + 120
        ("openai", "gpt-5.2-pro", "openai/gpt-5.2-pro", "2026-11-20", 0.189),  # 21 + 168
        ("openai", "gpt-5.4-pro", "openai/gpt-5.4-pro", "2026-11-20", 0.21),  # 30 + 180
        ("openai", "gpt-5.5-pro-2026-04-23", "openai/gpt-5.5-pro", "2026-11-20", 0.21),  # 30 + 180
        ("openai", "o3-pro-2025-06-10", "openai/o3-pro", "2026-11-20", 0.1),  # 20 + 80
        ("openai", "o1-pro", "openai/o1-pro", "2026-11-20", 0.75),  # 150 + 600
        ("openai", "o1-mini-2024-09-12", "openai/o1-mini", "2026-11-20", 0.0055),  # 1.1 + 4.4
        ("openai", "chatgpt-4o-latest", "openai/chatgpt-4o-latest", "2026-11-20", 0.02),  # 5 + 15
        ("openai", "gpt-4-turbo-2024-04-09", "openai/gpt-4-turbo", "2026-11-20", 0.04),  # 10 + 30
        ("openai", "gpt-4-1106-preview", "openai/gpt-4-turbo", "2026-11-20", 0.04),
        ("openai", "gpt-5-codex", "openai/gpt-5", "2026-11-20", 0.01125),  # 1.25 + 10
        ("openai", "gpt-5.1-codex-max", "openai/gpt-5.1", "2026-11-20", 0.01125),
        ("openai", "gpt-5.1-codex-mini", "openai/gpt-5.1-codex-mini", "2026-11-20", 0.00225),  # 0.25 + 2
        ("google", "gemini-3-pro-preview", "google/gemini-3-pro-preview", "2026-11-20", 0.014),  # 2 + 12
        ("google", "gemini-flash-lite-latest", "google/gemini-3.5-flash-lite", "2026-11-20", 0.0028),  # 0.3 + 2.5
        ("google", "gemini-2.5-flash-image", "google/gemini-2.5-flash-image", "2026-11-20", 0.0303),  # 0.3 + 30
        # mistral-medium-latest: Medium 3 (0.4 + 2), then Medium 3.5 from 2026-06-16 (1.5 + 7.5)
        ("mistral", "mistral-medium-latest", "mistral/mistral-medium-latest", "2026-06-15", 0.0024),
        ("mistral", "mistral-medium-latest", "mistral/mistral-medium-latest", "2026-06-16", 0.009),
        # mistral-large-4: 0.68 + 2.09, 1.36 + 4.18 from 2026-10-20, 0.70 + 2.1 from 2026-10-29
        ("mistral", "mistral-large-4", "mistral/mistral-large-4", "2026-10-19", 0.00277),
        ("mistral", "mistral-large-4-0", "mistral/mistral-large-4", "2026-10-20", 0.00554),
        ("mistral", "mistral-large-4", "mistral/mistral-large-4", "2026-10-29", 0.0028),
        ("mistral", "ministral-3b-2512", "mistral/ministral-3b-2512", "2026-11-20", 0.0002),  # 0.1 + 0.1
        ("mistral", "ministral-3-8b-2512", "mistral/ministral-8b-2512", "2026-11-20", 0.0003),  # 0.15 + 0.15
        ("mistral", "ministral-14b-latest", "mistral/ministral-14b-2512", "2026-11-20", 0.0004),  # 0.2 + 0.2
        # the -latest ids moved at the Mistral 3 launch: 0.1 + 0.1, then 0.15 + 0.15; 0.04 + 0.04, then 0.1 + 0.1
        ("mistral", "ministral-8b-latest", "mistral/ministral-8b-latest", "2025-12-01", 0.0002),
        ("mistral", "ministral-8b-latest", "mistral/ministral-8b-latest", "2025-12-02", 0.0003),
        ("mistral", "ministral-3b-latest", "mistral/ministral-3b-latest", "2025-12-01", 0.00008),
        ("mistral", "ministral-3b-latest", "mistral/ministral-3b-latest", "2025-12-02", 0.0002),
        ("mistral", "pixtral-large-latest", "mistral/pixtral-large-2411", "2026-11-20", 0.008),  # 2 + 6
        (
            "groq",
            "meta-llama/llama-4-scout-17b-16e-instruct",
            "groq/meta-llama/llama-4-scout-17b-16e-instruct",
            "2026-11-20",
            0.00045,
        ),  # 0.11 + 0.34
        (
            "groq",
            "meta-llama/llama-4-maverick-17b-128e-instruct",
            "groq/meta-llama/llama-4-maverick-17b-128e-instruct",
            "2026-11-20",
            0.0008,
        ),  # 0.2 + 0.6
        ("groq", "qwen/qwen3-32b", "groq/qwen/qwen3-32b", "2026-11-20", 0.00088),  # 0.29 + 0.59
        ("groq", "moonshotai/kimi-k2-instruct-0905", "groq/moonshotai/kimi-k2-instruct", "2026-11-20", 0.004),  # 1 + 3
        ("together", "openai/gpt-oss-120b", "together/openai/gpt-oss-120b", "2026-11-20", 0.00075),  # 0.15 + 0.6
        (
            "together",
            "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
            "together/meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
            "2026-11-20",
            0.00112,
        ),  # 0.27 + 0.85
        (
            "together",
            "together_ai/meta-llama/Llama-4-Scout-17B-16E-Instruct",
            "together/meta-llama/Llama-4-Scout-17B-16E-Instruct",
            "2026-11-20",
            0.00077,
        ),  # 0.18 + 0.59
        ("together", "deepseek-ai/DeepSeek-R1-0528", "together/deepseek-ai/DeepSeek-R1", "2026-11-20", 0.01),  # 3 + 7
        ("together", "deepseek-ai/DeepSeek-V3", "together/deepseek-ai/DeepSeek-V3", "2026-11-20", 0.0025),  # 1.25 x 2
        (
            "together",
            "Qwen/Qwen3-235B-A22B-fp8-tput",
            "together/Qwen/Qwen3-235B-A22B-fp8-tput",
            "2026-11-20",
            0.0008,
        ),  # 0.2 + 0.6
    ],
)
def test_issue_17_models(table: PriceTable, provider: str, model: str, key: str, when: str, dollars: float) -> None:
    found = entry(table, provider, model)
    assert found.key == key
    assert round(table.cost(found, at(f"{when}T12:00"), 1000, 1000, 0, 0), 8) == dollars


def test_gpt_5_pro_models_bill_the_whole_request_above_272k(table: PriceTable) -> None:
    pro = entry(table, "openai", "gpt-5.4-pro-2026-03-05")
    # 300000 input > 272000: 60 x 300000 + 270 x 1000 = 18000000 + 270000 = 18270000 -> $18.27
    assert round(table.cost(pro, at("2026-11-20T12:00"), 300_000, 1000, 0, 0), 6) == 18.27


def test_future_dated_entry(table: PriceTable) -> None:
    flash = entry(table, "google", "gemini-3.6-flash")
    # 0.75 x 1000 + 3.75 x 1000 = 4500 -> $0.0045 in 2026; 1.5 x 1000 + 7.5 x 1000 = 9000 -> $0.009 in 2027
    assert round(table.cost(flash, at("2026-12-31T23:59"), 1000, 1000, 0, 0), 6) == 0.0045
    assert round(table.cost(flash, at("2027-01-01T00:00"), 1000, 1000, 0, 0), 6) == 0.009


def test_ollama_is_free(table: PriceTable) -> None:
    local = entry(table, "ollama", "llama3.1:70b-instruct-q4")
    assert local.key == "ollama/*"
    assert table.cost(local, at("2026-01-01T00:00"), 10000, 5000, 0, 0) == 0.0


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("provider", "model", "key"),
    [
        ("anthropic", "claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet"),  # listed dated id
        ("anthropic", "claude-3-5-haiku-20991231", "anthropic/claude-3-5-haiku"),  # -YYYYMMDD stripped
        ("openai", "gpt-4.1-2099-01-01", "openai/gpt-4.1"),  # -YYYY-MM-DD stripped
        ("google", "models/gemini-2.5-pro", "google/gemini-2.5-pro"),
        ("google", "gemini/gemini-2.5-flash", "google/gemini-2.5-flash"),
        ("anthropic", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic/claude-3-5-sonnet"),
        ("anthropic", "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic/claude-haiku-4-5"),
        ("anthropic", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "anthropic.claude-opus-4-8-v1:0", "anthropic/claude-opus-4-8"),
        ("anthropic", "vertex_ai/claude-sonnet-4@20250514", "anthropic/claude-sonnet-4"),
        ("anthropic", "claude-opus-4-5@20251101", "anthropic/claude-opus-4-5"),
        ("anthropic", "claude-3-7-sonnet-latest", "anthropic/claude-3-7-sonnet"),
        ("openai", "openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai", "GPT-4o-Mini", "openai/gpt-4o-mini"),  # case-insensitive
        (
            "together",
            "meta-llama/meta-llama-3.1-8b-instruct-turbo",
            "together/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
        ),
        ("groq", "openai/gpt-oss-20b", "groq/openai/gpt-oss-20b"),
        # an exact match wins before anything is stripped
        ("openai", "o3-mini-2025-01-31", "openai/o3-mini"),
        ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
        ("mistral", "mistral-small-latest", "mistral/mistral-small-latest"),
    ],
)
def test_resolves(table: PriceTable, provider: str, model: str, key: str) -> None:
    assert entry(table, provider, model).key == key


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4.9-preview"),
        ("openai", "gpt-4.5"),  # never priced as gpt-4
        ("openai", "o3-max"),  # never priced as o3
        ("openai", "gpt-4o-mini-tts"),
        ("anthropic", "claude-sonnet-5-7"),  # never priced as claude-sonnet-5
        ("cohere", "command-a-plus-05-2026"),  # price unknown: unpriced, not $0
        ("google", "gpt-4o"),  # only within the row's provider
        ("xai", "grok-4"),
    ],
)
def test_unpriced(table: PriceTable, provider: str, model: str) -> None:
    assert table.match(provider, model) is None


def test_match_is_memoised(table: PriceTable) -> None:
    assert table.match("openai", "gpt-5-2025-08-07") is table.match("openai", "gpt-5-2025-08-07")


# --------------------------------------------------------------------------- overrides


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_override_replaces_a_builtin_price(tmp_path: Path) -> None:
    overrides = write(
        tmp_path / "negotiated.yaml",
        """\
        version: "acme-7"
        models:
          - provider: anthropic
            model: claude-3-5-sonnet
            prices: [{input: 2.4, output: 12}]
          - provider: openai
            model: ft:gpt-4o-mini:acme:support:abc123
            prices: [{input: 0.3, output: 1.2}]
          - provider: openai
            model: o3-snapshot-deal
            aliases: [o3-2025-04-16]
            prices: [{input: 1, output: 4}]
        """,
    )
    table = load_table(builtin_pricing(), overrides)
    assert table.version == "2026-12-04+acme-7"
    sonnet = entry(table, "anthropic", "claude-3-5-sonnet-20241022")  # built-in aliases still lead to it
    assert (sonnet.key, sonnet.source) == ("anthropic/claude-3-5-sonnet", "override")
    # 2.4 x 14320 + 12 x 642 = 34368 + 7704 = 42072 -> $0.042072; cache tokens (absent rates) bill at input
    assert round(table.cost(sonnet, at("2025-03-01T00:00"), 14320, 642, 0, 0), 6) == 0.042072
    ft = entry(table, "openai", "ft:gpt-4o-mini:acme:support:abc123")
    assert ft.source == "override"
    # an override's alias takes the name from the built-in entry
    assert entry(table, "openai", "o3-2025-04-16").key == "openai/o3-snapshot-deal"
    assert "o3-2025-04-16" not in entry(table, "openai", "o3").aliases
    assert entry(table, "openai", "o3").source == "builtin"
    assert sum(e.source == "override" for e in table.entries) == 3


def test_override_cannot_alias_a_builtin_model(tmp_path: Path) -> None:
    overrides = write(
        tmp_path / "bad.yaml",
        """\
        version: "1"
        models:
          - {provider: openai, model: my-4o, aliases: [gpt-4o], prices: [{input: 1, output: 2}]}
        """,
    )
    with pytest.raises(PricingError) as err:
        load_table(builtin_pricing(), overrides)
    message = str(err.value)
    assert "bad.yaml" in message and "models[0] (openai/my-4o)" in message and "openai/gpt-4o" in message


def test_override_errors_name_the_overrides_file(tmp_path: Path) -> None:
    overrides = write(
        tmp_path / "overrides.yaml",
        """\
        version: "1"
        models:
          - {provider: openai, model: x, prices: [{input: -1, output: 2}]}
        """,
    )
    with pytest.raises(PricingError, match=r"overrides\.yaml: models\[0\] \(openai/x\)"):
        load_table(builtin_pricing(), overrides)


# --------------------------------------------------------------------------- validation


def load_text(tmp_path: Path, body: str) -> PriceTable:
    return load_table(write(tmp_path / "pricing.yaml", 'version: "t"\nmodels:\n' + textwrap.dedent(body)))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # unknown field (a typo)
            """\
            - {provider: openai, model: a, prices: [{input: 1, output: 2}]}
            - {provider: openai, model: gpt-x, prices: [{inptu: 1, output: 2}]}
            """,
            r"pricing\.yaml: models\[1\] \(openai/gpt-x\): "
            r".*unknown field `inptu`.*\$\.models\[1\]\.prices\[0\]",
        ),
        (  # negative rate
            """\
            - {provider: openai, model: gpt-x, prices: [{input: -0.5, output: 2}]}
            """,
            r"pricing\.yaml: models\[0\] \(openai/gpt-x\): .*>= 0.*\$\.models\[0\]\.prices\[0\]\.input",
        ),
        (  # wrong type
            """\
            - {provider: openai, model: gpt-x, prices: [{input: cheap, output: 2}]}
            """,
            r"models\[0\] \(openai/gpt-x\): "
            r"Expected `float`, got `str` - at `\$\.models\[0\]\.prices\[0\]\.input`",
        ),
        (  # infinite rate
            """\
            - {provider: openai, model: gpt-x, prices: [{input: .inf, output: 2}]}
            """,
            r"models\[0\] \(openai/gpt-x\): prices\[0\]\.input: must be a finite number",
        ),
        (  # since not strictly increasing
            """\
            - {provider: openai, model: a, prices: [{input: 1, output: 2}]}
            - provider: openai
              model: o3
              prices:
                - {input: 10, output: 40}
                - {since: 2025-06-10, input: 2, output: 8}
                - {since: 2025-06-10, input: 1, output: 4}
            """,
            r"pricing\.yaml: models\[1\] \(openai/o3\): "
            r"prices\[2\]\.since: dates must be strictly increasing",
        ),
        (  # a later entry without since
            """\
            - {provider: openai, model: o3, prices: [{input: 10, output: 40}, {input: 2, output: 8}]}
            """,
            r"models\[0\] \(openai/o3\): prices\[1\]\.since: required",
        ),
        (  # duplicate alias, case-insensitive, across entries of one provider
            """\
            - {provider: openai, model: a, aliases: [shared-id], prices: [{input: 1, output: 2}]}
            - {provider: openai, model: b, aliases: [Shared-ID], prices: [{input: 1, output: 2}]}
            """,
            r"models\[1\] \(openai/b\): aliases\[0\]: 'Shared-ID' is already a model or alias of "
            r"models\[0\] \(openai/a\)",
        ),
        (  # an alias equal to another entry's model
            """\
            - {provider: openai, model: o3, prices: [{input: 1, output: 2}]}
            - {provider: openai, model: o3-mini, aliases: [o3], prices: [{input: 1, output: 2}]}
            """,
            r"models\[1\] \(openai/o3-mini\): aliases\[0\]: 'o3' is already a model or alias of "
            r"models\[0\] \(openai/o3\)",
        ),
        (  # the same model twice
            """\
            - {provider: openai, model: o3, prices: [{input: 1, output: 2}]}
            - {provider: OpenAI, model: O3, prices: [{input: 1, output: 2}]}
            """,
            r"models\[1\] \(OpenAI/O3\): model: 'O3' is already a model or alias of models\[0\]",
        ),
        (  # a key given twice
            """\
            - {provider: openai, model: o3, prices: [{input: 1, input: 2, output: 2}]}
            """,
            r"pricing\.yaml: not valid YAML: .*duplicate key 'input'",
        ),
        (  # no prices
            """\
            - {provider: openai, model: o3, prices: []}
            """,
            r"models\[0\] \(openai/o3\): .*\$\.models\[0\]\.prices",
        ),
        (  # a service tier the format does not know (the reference's `batches`)
            """\
            - provider: openai
              model: o3
              prices: [{input: 2, output: 8, service_tiers: {batches: {input: 1, output: 4}}}]
            """,
            r"models\[0\] \(openai/o3\): .*unknown field `batches`.*\$\.models\[0\]\.prices\[0\]\.service_tiers",
        ),
        (  # an infinite tier rate
            """\
            - provider: openai
              model: o3
              prices: [{input: 2, output: 8, service_tiers: {flex: {input: .inf, output: 4}}}]
            """,
            r"models\[0\] \(openai/o3\): prices\[0\]\.service_tiers\.flex\.input: must be a finite number",
        ),
        (  # a negative 1-hour write rate
            """\
            - {provider: anthropic, model: c, prices: [{input: 2, output: 8, cache_write_1h: -4}]}
            """,
            r"models\[0\] \(anthropic/c\): .*>= 0.*\$\.models\[0\]\.prices\[0\]\.cache_write_1h",
        ),
    ],
)
def test_validation_errors_name_the_entry(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(PricingError, match=expected):
        load_text(tmp_path, body)


def test_too_many_thresholds(tmp_path: Path) -> None:
    rows = "".join(
        f"- {{provider: openai, model: m{i}, prices: [{{input: 1, output: 2, "
        f"above: {{input_tokens: {(i + 1) * 1000}, input: 2, output: 4}}}}]}}\n"
        for i in range(MAX_THRESHOLDS + 1)
    )
    with pytest.raises(PricingError, match=r"pricing\.yaml: models\[8\] \(openai/m8\): .*at most 8"):
        load_text(tmp_path, rows)
    # eight distinct thresholds are fine, and so is reusing one
    table = load_text(tmp_path, rows.replace("9000", "1000"))
    assert table.thresholds == tuple(range(1000, 9000, 1000))


def test_missing_file_and_missing_version(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"nowhere\.yaml: cannot read"):
        load_table(tmp_path / "nowhere.yaml")
    path = write(tmp_path / "pricing.yaml", "models: []\n")
    with pytest.raises(PricingError, match=r"pricing\.yaml: .*version"):
        load_table(path)


# --------------------------------------------------------------------------- CLI reports


def test_resolve_report(table: PriceTable) -> None:
    code, text = resolve_report(table, "openai", "o3-2025-04-16", at("2025-06-01T00:00"))
    assert code == 0
    assert "openai/o3" in text and "input 10 output 40 cache_read 2.5" in text
    code, text = resolve_report(table, "google", "models/gemini-2.5-pro", at("2025-06-01T00:00"))
    assert code == 0 and "above 200000 input tokens" in text and "input 2.5 output 15" in text
    code, text = resolve_report(table, "openai", "gpt-4.5", None)
    assert code == 1 and "unpriced" in text
    code, text = resolve_report(table, "openai", "o3", at("2026-11-01T00:00"))
    assert "  flex tier: input 1 output 4 cache_read 0.25" in text and "priority tier: input 3.5" in text


def test_check_report(table: PriceTable) -> None:
    text = check_report(table)
    assert text.startswith(f"pricing 2026-12-04: {len(table.entries)} entries")
    assert "100000, 128000, 200000, 272000" in text
    assert "anthropic/claude-3-5-sonnet" in text and text.endswith("ok")


# --------------------------------------------------------------------------- pricing diff


def test_the_shipped_table_agrees_with_genai_prices_or_says_why(table: PriceTable) -> None:
    """Every disagreement beyond 0.5%, in any period, is listed in docs/pricing-exceptions.yaml with
    the source that is wrong and why; a new one, or a listed one that no longer happens, fails."""
    code, text = diff_genai_prices(table)
    assert code == 0, text
    assert "[NEW]" not in text and "no longer disagreeing" not in text
    # history is compared, not only today's rates: o3's launch period and gpt-4o's alias period
    assert "openai/o3 (genai-prices o3) until 2025-06-10:\n    cache_read 2.5 vs 0.5" in text
    assert "openai/gpt-4o (genai-prices gpt-4o) until 2024-10-02:" in text
    assert "priced by genai-prices, not in the table (openai" in text


def test_every_exception_names_a_built_in_entry(table: PriceTable) -> None:
    reviewed = load_exceptions(EXCEPTIONS)
    keys = {f"{e.provider}/{name}" for e in table.entries for name in (e.model, *e.aliases)}
    assert {e.model for e in reviewed.exceptions} <= keys
    assert all(len(e.why) > 40 for e in reviewed.exceptions)


def _exceptions(tmp_path: Path, body: str, version: str = "0.2.3") -> Path:
    listed = f"exceptions:\n{textwrap.dedent(body)}" if body else "exceptions: []\n"
    return write(tmp_path / "exceptions.yaml", f'genai_prices: "{version}"\n{listed}')


@pytest.fixture
def o3_without_history(tmp_path: Path) -> PriceTable:
    # today's o3 price back to launch: genai-prices has 10/40 before 2025-06-10
    return load_text(tmp_path, "- {provider: openai, model: o3, prices: [{input: 2, output: 8, cache_read: 0.5}]}\n")


def test_a_new_disagreement_fails_the_diff(o3_without_history: PriceTable, tmp_path: Path) -> None:
    code, text = diff_genai_prices(o3_without_history, _exceptions(tmp_path, ""))
    assert code == 1
    assert "openai/o3 (genai-prices o3) until 2025-06-10:\n    input 2 vs 10  [NEW]\n    output 8 vs 40  [NEW]" in text
    assert text.endswith("2 rate disagreements in 1 periods: 0 listed, 2 new; 0 listed that no longer disagree — FAIL")


def test_a_listed_disagreement_passes_and_a_stale_one_fails(o3_without_history: PriceTable, tmp_path: Path) -> None:
    listed = "- {model: openai/o3, rates: [input, output], wrong: cost-api, why: the test's table has no history}\n"
    code, text = diff_genai_prices(o3_without_history, _exceptions(tmp_path, listed))
    assert code == 0, text
    assert "input 2 vs 10  [listed: cost-api wrong]" in text
    stale = listed + "- {model: openai/o3, since: 2025-06-10, rates: [output], wrong: genai-prices, why: agrees}\n"
    code, text = diff_genai_prices(o3_without_history, _exceptions(tmp_path, stale))
    assert code == 1
    assert "but no longer disagreeing (1): remove them\n  openai/o3 from 2025-06-10: output" in text
    # the exceptions were reviewed against one genai-prices version: another one fails until reviewed
    code, text = diff_genai_prices(o3_without_history, _exceptions(tmp_path, listed, version="0.1.0"))
    assert code == 1 and "reviewed against genai-prices 0.1.0, not 0.2.3" in text


def test_the_diff_compares_the_long_context_tier(tmp_path: Path) -> None:
    table = load_text(
        tmp_path,
        "- {provider: google, model: gemini-2.5-pro, prices: [{input: 1.25, output: 10, cache_read: 0.125,"
        " above: {input_tokens: 200000, input: 2.5, output: 20, cache_read: 0.25}}]}\n",
    )
    code, text = diff_genai_prices(table, _exceptions(tmp_path, ""))
    assert code == 1
    assert (
        "google/gemini-2.5-pro (genai-prices gemini-2.5-pro) always:\n    output above 200000 20 vs 15  [NEW]" in text
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- {model: openai/o3, rates: [input], wrong: litellm, why: x}\n", "Invalid enum value 'litellm'"),
        ("- {model: openai/o3, rates: [], wrong: cost-api, why: x}\n", "length >= 1"),
        ("- {model: openai/o3, rates: [input], wrong: cost-api}\n", "missing required field `why`"),
        ("- {model: openai/o3, rate: [input], wrong: cost-api, why: x}\n", "unknown field `rate`"),
    ],
)
def test_a_malformed_exceptions_file_names_itself(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PricingError, match=rf"exceptions\.yaml: .*{re.escape(message)}"):
        load_exceptions(_exceptions(tmp_path, body))


def test_diff_without_genai_prices(table: PriceTable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # import fails
    code, text = diff_genai_prices(table)
    assert code == 2 and "genai-prices is not installed" in text
