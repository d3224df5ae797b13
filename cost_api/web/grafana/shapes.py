"""The datasource's answers, typed: each a `msgspec.Struct` whose fields encode in the order and under
the names the JSON datasource reads (docs/grafana.md), so that litestar documents them in `/schema`.
A field typed `... | UnsetType = UNSET` is left out while unset (`refId` without one in the target)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from cost_api.aggregation.blocks import Block

EpochMs = Annotated[int, Meta(description="epoch milliseconds")]
RefId = Annotated[str | UnsetType, Meta(description="the target's refId, when it has one")]


class Status(Block):
    """GET /grafana/: Save & test."""

    status: Literal["ok"]
    datasource: Literal["cost-api"]


class Option(Block):
    """A choice of a select payload field, or a value of one (/metric-payload-options)."""

    label: str
    value: str


class PayloadField(Block, kw_only=True):
    """A payload field of a target, as the plugin's builder mode shows it."""

    name: str
    label: str
    type: Literal["select", "multi-select", "input"]
    options: list[Option] | UnsetType = UNSET
    placeholder: str | UnsetType = UNSET


class Metric(Block):
    """A target: its name (`value`, and `text` for plugins before 0.4), its label, its payload fields."""

    value: str
    label: str
    payloads: list[PayloadField]
    text: str


class TextValue(Block):
    """A variable's value for /search (plugins before 0.4)."""

    text: str
    value: str


class VariableValue(Block):
    """A variable's value for /variable."""

    text: str = msgspec.field(name="__text")
    value: str = msgspec.field(name="__value")


class TagKey(Block):
    """An ad-hoc filter key."""

    type: Literal["string"]
    text: str


class TagValue(Block):
    """A value of an ad-hoc filter key."""

    text: str


class TimeSeries(Block, kw_only=True):
    """A time series: `[value, epoch ms of the bucket's start]` per bucket."""

    target: Annotated[str, Meta(description="the metric, or the key of a grouped series")]
    datapoints: list[tuple[float, EpochMs]]
    refId: RefId = UNSET


class Column(Block):
    text: str
    type: Annotated[str, Meta(description="string, number or time (epoch ms)")]


Cell = Annotated[str | float | None, Meta(description="text, a number (time: epoch ms) or null")]


class Table(Block, kw_only=True):
    """A table: its columns, and its rows of cells in the columns' order."""

    type: Literal["table"] = "table"
    columns: list[Column]
    rows: list[list[Cell]]
    refId: RefId = UNSET


Answer = TimeSeries | Table  # what /query answers per target (a grouped series: several)


class Event(Block):
    """An anomaly incident as an annotation: a region from its start to its end (to the range's end while
    it runs)."""

    time: EpochMs
    timeEnd: EpochMs
    title: str
    text: str
    tags: list[str]
    id: Annotated[str, Meta(description="the incident's id, as /v1/anomalies has it")]


class Annotation(Block):
    """POST /annotations (plugins before 0.4): an event with the request's `annotation` echoed."""

    annotation: Annotated[dict[str, Any], Meta(description="the request's `annotation`, as sent")]
    time: EpochMs
    timeEnd: EpochMs
    title: str
    text: str
    tags: list[str]
    id: str
    isRegion: bool

    @classmethod
    def of(cls, annotation: dict[str, Any], event: Event) -> Annotation:
        fields = msgspec.structs.asdict(event)
        return cls(annotation=annotation, **fields, isRegion=event.timeEnd != event.time)
