"""`Groups` on small hand-made groups: every figure below is worked out by hand beside the cells.

Spends are multiples of 1/8 (exact in binary), so sums compare with `==`.
"""

from __future__ import annotations

import numpy as np
import pytest

from cost_api.aggregation.groups import NARROW_LIMIT, Groups, Totals, Vocab
from cost_api.aggregation.params import top_ranked
from cost_api.windows import HOUR_MS

from .cells import cell, groups

DAY = 20_000  # an epoch day (2024-10-04); its first hour is DAY * 24
H = DAY * 24


def sample(vocab: Vocab) -> Groups:
    """Seven groups over two hours and two providers; one of bad rows, one unpriced, one cache hit."""
    return groups(
        vocab,
        [
            cell(H, provider="openai", model="gpt-4o", key="/a", requests=3, spend=1.5, errors=1, prompt_tokens=30),
            cell(H, provider="openai", model="gpt-4o", key="/a", requests=2, spend=0.5, size_class=1, prompt_tokens=20),
            cell(H, provider="openai", model="gpt-4o", key="/a", requests=4, cache_hit=True, saved=0.75),
            cell(H + 1, provider="openai", model="mini", key="/b", requests=5, spend=0.25, completion_tokens=7),
            cell(H + 1, provider="anthropic", model="opus", key="/a", requests=1, spend=2.0, errors=1),
            cell(H + 1, provider="anthropic", model="new", key="/b", requests=6, priced_as=None),
            cell(H + 1, provider="mistral", model="large", key="/c", requests=0, quality=1, priced_as=None, excluded=9),
        ],
    )


def test_total_folds_every_group_and_leaves_the_bad_ones_out_of_the_figures() -> None:
    t = sample(Vocab()).total()
    assert t.requests == 3 + 2 + 4 + 5 + 1 + 6
    assert t.spend == 1.5 + 0.5 + 0.25 + 2.0
    assert t.saved_by_cache == 0.75
    assert t.cache_hits == 4
    assert t.unpriced_requests == 6 + 0  # the bad group is unpriced too, but counts no request
    assert t.errors == 2
    assert (t.prompt_tokens, t.completion_tokens) == (50, 7)
    assert t.excluded == 9


def test_by_one_column_keys_by_the_decoded_value() -> None:
    per = sample(Vocab()).by("provider")
    assert set(per) == {"openai", "anthropic"}  # mistral has only bad rows: no key
    openai, anthropic = per["openai"], per["anthropic"]
    assert (openai.requests, openai.spend, openai.cache_hits, openai.errors) == (14, 2.25, 4, 1)
    assert openai.saved_by_cache == 0.75
    assert (anthropic.requests, anthropic.spend, anthropic.unpriced_requests) == (7, 2.0, 6)


def test_by_several_columns_keys_by_tuples() -> None:
    per = sample(Vocab()).by("provider", "model")
    assert set(per) == {("openai", "gpt-4o"), ("openai", "mini"), ("anthropic", "opus"), ("anthropic", "new")}
    assert per[("openai", "gpt-4o")].requests == 9
    assert per[("openai", "gpt-4o")].spend == 2.0
    assert per[("anthropic", "new")].unpriced_requests == 6
    # the dimension key of the rollups, None included (code 0)
    g = groups(Vocab(), [cell(H, key=None, requests=2), cell(H, key="/a", requests=3), cell(H + 1, key=None)])
    assert {k: t.requests for k, t in g.by("key").items()} == {None: 3, "/a": 3}


def test_by_gives_the_same_figures_on_either_path() -> None:
    """Small codes take a counting pass, large ones (here: raw hours, ~480,000) `np.unique`."""
    vocab = Vocab()
    g = groups(vocab, [cell(H + h % 3, key=f"/k{h % 2}", requests=h + 1, spend=h / 8) for h in range(12)])
    by_hour = g.by("slot")  # large values: np.unique
    assert {int(k): t.requests for k, t in by_hour.items()} == {
        H: 1 + 4 + 7 + 10,
        H + 1: 2 + 5 + 8 + 11,
        H + 2: 3 + 6 + 9 + 12,
    }
    assert {int(k): t.spend for k, t in by_hour.items()} == {
        H: (0 + 3 + 6 + 9) / 8,
        H + 1: (1 + 4 + 7 + 10) / 8,
        H + 2: (2 + 5 + 8 + 11) / 8,
    }
    shifted = g.subset(slice(None))
    shifted.slot = shifted.slot - H  # the same hours as small values: the counting pass
    assert {int(k) + H: t for k, t in shifted.by("slot").items()} == by_hour
    both = g.by("key", "slot")
    assert both[("/k0", H)].requests == 1 + 7  # h = 0, 6
    assert both[("/k1", H)].requests == 4 + 10  # h = 3, 9
    assert len(both) == 6


def test_by_on_no_groups_or_only_bad_ones_is_empty() -> None:
    vocab = Vocab()
    assert groups(vocab, []).by("provider") == {}
    assert groups(vocab, [cell(H, quality=2, requests=0, excluded=4)]).by("provider") == {}


def test_excluded_counts_the_bad_rows_per_reason() -> None:
    g = groups(
        Vocab(),
        [
            cell(H, quality=1, requests=0, excluded=4),
            cell(H + 1, quality=1, requests=0, excluded=1),
            cell(H, quality=2, provider=None, requests=0, excluded=2),
            cell(H, requests=10),
        ],
    )
    assert g.excluded() == {"negative_tokens": 5, "missing_provider_or_model": 2}
    assert len(g.counted()) == 1
    assert g.counted().total().requests == 10


def test_collapsed_sums_the_size_classes_and_keeps_cache_hits_keys_and_bad_rows_apart() -> None:
    g = sample(Vocab())
    c = g.collapsed()
    # hour H: (openai, gpt-4o, /a, miss) from two size classes, and the cache hit; hour H+1: four groups
    assert len(c) == 2 + 4
    assert (c.size_class == 0).all()
    assert c.total() == g.total()
    misses = c.subset((c.slot == H) & ~c.cache_hit)
    assert (misses.counts["requests"].tolist(), misses.spend.tolist()) == ([5], [2.0])
    assert misses.counts["prompt_tokens"].tolist() == [50]
    assert misses.counts["errors"].tolist() == [1]
    assert misses.values("priced_as").tolist() == ["openai/gpt-4o"]
    hits = c.subset((c.slot == H) & c.cache_hit)
    assert (hits.counts["requests"].tolist(), hits.saved.tolist()) == ([4], [0.75])
    bad = c.subset(c.quality > 0)
    assert bad.counts["excluded"].tolist() == [9]


def test_collapsed_keeps_service_tiers_apart() -> None:
    g = groups(Vocab(), [cell(H, requests=1, spend=1.0), cell(H, requests=2, spend=0.5, tier="flex"), cell(H)])
    c = g.collapsed()
    assert sorted(zip(c.values("tier").tolist(), c.counts["requests"].tolist(), strict=True), key=str) == [
        ("flex", 2),
        (None, 2),
    ]


def test_daily_sums_the_hours_of_each_utc_day_into_its_first_hour() -> None:
    g = groups(
        Vocab(),
        [
            cell(H - 1, requests=1, spend=0.125),  # the day before: 23:00
            cell(H, requests=2, spend=0.25),
            cell(H + 23, requests=4, spend=0.5),  # the day's last hour
            cell(H + 24, requests=8, spend=1.0),  # the next day
            cell(H + 5, key="/x", requests=16),  # another key: a group of its own
        ],
    )
    d = g.daily()
    columns = (d.slot.tolist(), d.values("key").tolist(), d.counts["requests"].tolist(), d.spend.tolist())
    rows = sorted(zip(*columns, strict=True), key=str)
    assert rows == sorted(
        [(H - 24, None, 1, 0.125), (H, None, 6, 0.75), (H, "/x", 16, 0.0), (H + 24, None, 8, 1.0)], key=str
    )
    assert d.total() == g.total()


def test_collapsed_of_nothing_is_nothing() -> None:
    empty = groups(Vocab(), [])
    assert len(empty.collapsed()) == 0
    assert len(empty.daily()) == 0


def test_buckets_count_each_group_in_the_bucket_holding_its_slot_start() -> None:
    g = groups(
        Vocab(),
        [
            cell(H - 2, requests=1),  # before the first bucket: counts in the first
            cell(H, requests=2),  # exactly at the first bucket's start
            cell(H + 5, requests=4),
            cell(H + 6, requests=8),  # exactly at the second bucket's start
            cell(H + 30, requests=16, spend=0.5),  # after the last start: in the last
        ],
    )
    starts = [H * HOUR_MS, (H + 6) * HOUR_MS, (H + 12) * HOUR_MS]
    out = g.buckets(starts)
    assert [t.requests for t in out] == [1 + 2 + 4, 8, 16]
    assert [t.spend for t in out] == [0.0, 0.0, 0.5]
    assert isinstance(out[0], Totals)


def test_buckets_of_ten_minute_slots() -> None:
    ten = 600_000
    g = groups(Vocab(), [cell(6 * H + 1, requests=1), cell(6 * H + 2, requests=2)], slot_ms=ten)
    starts = [H * HOUR_MS, H * HOUR_MS + 2 * ten]  # the slot starting at 2 × 10 min is in the second
    assert [t.requests for t in g.buckets(starts)] == [1, 2]
    assert [t.requests for t in groups(Vocab(), [], slot_ms=ten).buckets(starts)] == [0, 0]


def test_subset_by_mask_index_and_slice_keeps_every_column_aligned() -> None:
    g = sample(Vocab())
    for picked in (g.subset(g.slot == H + 1), g.subset(np.array([3, 4, 5, 6])), g.subset(slice(3, None))):
        assert len(picked) == 4
        assert picked.counts["requests"].tolist() == [5, 1, 6, 0]
        assert picked.values("provider").tolist() == ["openai", "anthropic", "anthropic", "mistral"]
        assert picked.spend.tolist() == [0.25, 2.0, 0.0, 0.0]
        assert picked.quality.tolist() == [0, 0, 0, 1]
        assert picked.counts["excluded"].tolist() == [0, 0, 0, 9]
    assert g.subset(np.array([6, 0])).counts["requests"].tolist() == [0, 3]  # in the order asked


def test_concat_skips_missing_and_empty_parts() -> None:
    vocab = Vocab()
    a = groups(vocab, [cell(H, requests=1), cell(H + 1, requests=2)])
    b = groups(vocab, [cell(H - 1, requests=4, spend=0.5)])
    both = Groups.concat(vocab, HOUR_MS, [a, None, groups(vocab, []), b])
    assert both.slot.tolist() == [H, H + 1, H - 1]  # in the parts' order, unsorted
    assert both.counts["requests"].tolist() == [1, 2, 4]
    assert both.total().spend == 0.5
    assert Groups.concat(vocab, HOUR_MS, [None, a]) is a  # one part: itself
    nothing = Groups.concat(vocab, HOUR_MS, [None, groups(vocab, [])])
    assert len(nothing) == 0
    assert nothing.total() == Totals()


def test_insert_sorted_puts_each_added_group_after_the_equal_slots() -> None:
    vocab = Vocab()
    held = groups(
        vocab, [cell(H, requests=1), cell(H + 2, requests=2), cell(H + 2, requests=3), cell(H + 5, requests=4)]
    )
    added = groups(vocab, [cell(H + 9, requests=50), cell(H + 2, requests=20), cell(H - 1, requests=10)])  # unsorted
    out = held.insert_sorted(added)
    assert out.slot.tolist() == [H - 1, H, H + 2, H + 2, H + 2, H + 5, H + 9]
    assert out.counts["requests"].tolist() == [10, 1, 2, 3, 20, 4, 50]
    assert out.counts["excluded"].tolist() == [0] * 7
    assert held.insert_sorted(groups(vocab, [])) is held
    assert len(held) == 4  # not changed in place


def test_splice_replaces_each_cut_by_its_piece() -> None:
    vocab = Vocab()
    held = groups(vocab, [cell(H + h, requests=h) for h in range(6)])  # requests 0…5
    one = groups(vocab, [cell(H + 1, requests=100), cell(H + 1, key="/k", requests=101)])
    none = groups(vocab, [])
    new = groups(vocab, [cell(H + 4, requests=400)])
    # rows [1, 2) replaced by two, [3, 4) dropped, an insertion before row 5 (an empty cut)
    out = held.splice([(1, 2), (3, 4), (5, 5)], [one, none, new])
    assert out.slot.tolist() == [H, H + 1, H + 1, H + 2, H + 4, H + 4, H + 5]
    assert out.counts["requests"].tolist() == [0, 100, 101, 2, 4, 400, 5]
    assert out.values("key").tolist() == [None, None, "/k", None, None, None, None]
    assert held.counts["requests"].tolist() == [0, 1, 2, 3, 4, 5]  # not changed in place
    with pytest.raises(ValueError):
        held.splice([(0, 1)], [])  # a piece per cut


def test_values_decode_the_coded_columns_only() -> None:
    g = sample(Vocab())
    assert g.values("model").tolist()[:4] == ["gpt-4o", "gpt-4o", "gpt-4o", "mini"]
    assert g.values("priced_as").tolist()[-2:] == [None, None]
    assert g.values("slot").tolist() == g.slot.tolist()
    assert g.unpriced.tolist() == [False, False, False, False, False, True, True]


def test_leading_keeps_the_top_keys_and_those_tied_with_the_last() -> None:
    vocab = Vocab()
    g = groups(
        vocab,
        [
            cell(H, key="a", spend=2.0),
            cell(H + 1, key="a", spend=1.0),  # a: 3.0 over two groups
            cell(H, key="c", spend=2.0),  # c and b tie at 2.0
            cell(H, key="b", spend=1.5),
            cell(H + 1, key="b", spend=0.5),
            cell(H, key="d", spend=1.0),
            cell(H, key="e", quality=1, excluded=9),  # bad rows only: no key of a ranked list
        ],
    )
    assert sorted(g.leading(2).by("key")) == ["a", "b", "c"]  # the tie with the second is kept
    assert sorted(g.leading(3).by("key")) == ["a", "b", "c"]
    assert sorted(g.leading(4).by("key")) == ["a", "b", "c", "d"]
    assert len(g.leading(9)) == 6  # as many keys as asked or fewer: every counted group
    before = groups(vocab, [cell(H - 24, key="b", spend=0.25), cell(H - 24, key="d", spend=4.0)])
    assert [(k, t.spend, p) for k, t, p in top_ranked(g, before, 2)] == [("a", 3.0, 0.0), ("b", 2.0, 0.25)]


def test_collapsed_keeps_size_classes_apart_when_asked() -> None:
    """A view's kept hours keep each size class (a what-if reprices by it); plain collapsing does not."""
    vocab = Vocab()
    g = groups(
        vocab,
        [
            cell(H, key="/a", requests=2, spend=0.5, size_class=0),
            cell(H, key="/a", requests=3, spend=1.25, size_class=1),  # past a long-context threshold
            cell(H, key="/a", requests=1, spend=0.25, size_class=1),
        ],
    )
    sized = g.collapsed(keep_sizes=True)
    assert sorted(zip(sized.size_class.tolist(), sized.counts["requests"].tolist(), strict=True)) == [(0, 2), (1, 4)]
    plain = g.collapsed()
    assert plain.size_class.tolist() == [0] and plain.counts["requests"].tolist() == [6]
    assert sized.spend.sum() == plain.spend.sum() == 2.0


def test_narrowed_holds_as_int32_only_the_count_columns_within_the_limit() -> None:
    vocab = Vocab()
    big = NARROW_LIMIT + 1
    g = groups(vocab, [cell(H, requests=3, prompt_tokens=big), cell(H + 1, requests=4, prompt_tokens=-big)])
    out = g.narrowed()
    assert out.counts["requests"].dtype == np.int32 and out.counts["requests"].tolist() == [3, 4]
    assert out.counts["prompt_tokens"].dtype == np.int64 and out.counts["prompt_tokens"].tolist() == [big, -big]
    edge = groups(vocab, [cell(H, requests=NARROW_LIMIT), cell(H, requests=-NARROW_LIMIT)]).narrowed()
    assert edge.counts["requests"].dtype == np.int32 and edge.counts["requests"].tolist() == [
        NARROW_LIMIT,
        -NARROW_LIMIT,
    ]
    assert np.shares_memory(out.slot, g.slot) and g.counts["requests"].dtype == np.int64  # the rest shared; `g` kept
    assert out.total().prompt_tokens == 0 and out.total().requests == 7


def test_insert_sorted_widens_a_narrowed_column_for_values_past_its_type() -> None:
    vocab = Vocab()
    held = groups(vocab, [cell(H, requests=1), cell(H + 2, requests=2)]).narrowed()
    huge = 3 * 2**31 + 5  # past int32: np.insert alone would wrap it to 5
    out = held.insert_sorted(groups(vocab, [cell(H + 1, requests=huge)]))
    assert out.counts["requests"].tolist() == [1, huge, 2]
    assert out.counts["requests"].dtype == np.int64
    small = held.insert_sorted(groups(vocab, [cell(H + 1, requests=7)]).narrowed())
    assert small.counts["requests"].dtype == np.int32 and small.counts["requests"].tolist() == [1, 7, 2]
