"""CSV answers: `format=csv` or `Accept: text/csv` turns a list answer's `items` into a spreadsheet.

The dialect is chosen for what finance opens: RFC 4180 (comma, CRLF, `"` quoting), UTF-8 with a
byte-order mark so that Excel reads `…` and non-ASCII names correctly, one header line, numbers as
plain decimals (`0.000001`, never `1e-06`), booleans `true`/`false`, null as an empty cell. A text
cell that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab, CR or LF, or
the full-width `＝` `＋` `－` `＠` that spreadsheets in CJK locales read as those) gets a leading `'`
(OWASP's CSV-injection advice): endpoint and model names come from the gateway's callers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Request, Response

from cost_api.errors import BadParameter

CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"
FORMATS = ("json", "csv")
_BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def answer_format(request: Request[Any, Any, Any], format_: str | None, formats: Sequence[str] = FORMATS) -> str:
    """`format=` one of `formats` wins (else a 400 naming it); without it, `Accept` decides (JSON
    unless text/csv is preferred)."""
    if format_ is not None:
        if format_ not in formats:
            expected = ", ".join(formats[:-1]) + " or " + formats[-1]
            raise BadParameter("format", f"expected {expected}; got {format_!r}")
        return format_
    return "csv" if request.accept.best_match(["application/json", "text/csv"]) == "text/csv" else "json"


def wants_csv(request: Request[Any, Any, Any], format_: str | None) -> bool:
    """`format=csv|json` wins; without it, `Accept` decides (JSON unless text/csv is preferred)."""
    return answer_format(request, format_) == "csv"


def cell(value: Any) -> str:
    """One value as CSV text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text.removesuffix(".0") if "." in text else text
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


Row = Mapping[str, Any] | msgspec.Struct


def _fields(row: Row) -> Mapping[str, Any]:
    """A row as the JSON shows it: a Struct's fields by their JSON names, unset ones left out."""
    return msgspec.to_builtins(row) if isinstance(row, msgspec.Struct) else row


def render(rows: Iterable[Row], columns: Sequence[str]) -> str:
    """The CSV text (without BOM) of `rows` (dicts, or the Structs of an answer's `items`), one line
    each, under a header of `columns`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in map(_fields, rows):
        writer.writerow([cell(row.get(c)) for c in columns])
    return out.getvalue()


def document(rows: Iterable[Row], columns: Sequence[str]) -> str:
    """The whole CSV as answered: the byte-order mark, the header, the rows (`cost-api report` prints it)."""
    return _BOM + render(rows, columns)


def csv_response(
    rows: Sequence[Row],
    *,
    filename: str,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[Any]:
    """A downloadable CSV of flat rows. `columns` fixes the header (needed when `rows` may be empty);
    by default it is every key of the rows, in first-seen order.

    Typed `Response[Any]`: a handler answers it in place of the JSON body its annotation declares (and
    the OpenAPI document describes); its content is the CSV's bytes."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in map(_fields, rows) for key in row))
    body = document(rows, columns).encode("utf-8")
    return Response(
        content=body,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


def filename(lens: str, rng: Any, *parts: str) -> str:
    """`spend-provider-20261021T120000Z-20261120T120000Z.csv` for a lens, its range and qualifiers."""
    stamp = "-".join(t.replace("-", "").replace(":", "") for t in rng.as_json().values())
    return "-".join([lens, *parts, stamp]) + ".csv"
