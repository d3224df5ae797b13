"""The Grafana JSON datasource (simpod-json-datasource 0.3–0.6) over the /v1 lenses.

Every number comes from a lens (`spend`, `summary`, `live`) or from /v1/trend's computation
(`trend.chart`): a Grafana answer and the /v1 answer for the same range are the same figures. This
package only translates: Grafana's request bodies in (msgspec Structs read leniently: unknown keys
ignored, `payload` as an object, a JSON string or nothing), its shapes out (time series `{target, datapoints}`, tables
`{type: "table", columns, rows}`). docs/grafana.md is the guide.

- `catalogue`: the targets, their payload fields (/metrics), the variables and ad-hoc filter keys;
- `protocol`: the request bodies as Structs (read leniently), what is read of them (the range, the
  zone, the targets), the table shape;
- `filters`: payload filters, `$variables` and ad-hoc filters resolved into the lenses' `Filters`;
- `answers`: what each endpoint answers, from the lenses.

The routes (cost_api.web.routes.grafana) use the names below.
"""

from cost_api.web.grafana.answers import (
    legacy_annotations,
    payload_options,
    query,
    search,
    tag_keys,
    tag_values,
    variable,
)
from cost_api.web.grafana.catalogue import metrics
from cost_api.web.grafana.protocol import (
    AnnotationsRequest,
    OptionsRequest,
    QueryRequest,
    Request,
    TagValuesRequest,
    VariableRequest,
    decode,
)

__all__ = [
    "AnnotationsRequest",
    "OptionsRequest",
    "QueryRequest",
    "Request",
    "TagValuesRequest",
    "VariableRequest",
    "decode",
    "legacy_annotations",
    "metrics",
    "payload_options",
    "query",
    "search",
    "tag_keys",
    "tag_values",
    "variable",
]
