"""The reports: the page /reports (leads see every chart, editors the FAQ part), each chart's CSV download
(/reports/<chart>.csv) and its JSON (/api/reports/<chart>), all for the same range: ?range=today|7d|30d|custom
(&from=YYYY-MM-DD&to=YYYY-MM-DD) &bucket=hour|day.

The figures come from bot/web/reports.py; the charts are inline SVG from bot/web/charts.py, each with a legend and
the table of its figures, which is exactly what its CSV holds. CSV cells that a spreadsheet would run as a formula
get a leading quote (knowledge_base.io.neutral_cell, as the FAQ export does).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.responses import Response

from bot.web.access import Access, AccessFirstRoute, EditorViewer
from bot.web.charts import Series, colours, grouped_bars, horizontal_bars, lines, stacked_bars
from bot.web.rendering import render
from bot.web.reports import BUCKETS, CHARTS, RANGES, Chart, ChartSpec, Period, ReportError, ReportService
from knowledge_base.io import neutral_cell

router = APIRouter(route_class=AccessFirstRoute)
api = APIRouter(prefix="/api/reports", tags=["reports"], route_class=AccessFirstRoute)

RangeName = Annotated[str, Query(alias="range", max_length=16, description="today, 7d, 30d or custom")]
Bucket = Annotated[str, Query(max_length=8, description="hour or day (default: hour for today, else day)")]
FromDate = Annotated[str, Query(alias="from", max_length=10, description="custom range: the first day, YYYY-MM-DD")]
ToDate = Annotated[str, Query(alias="to", max_length=10, description="custom range: the last day (inclusive)")]


def report_service(request: Request) -> ReportService:
    services = request.app.state.services
    return ReportService(services.engine, sla_minutes=services.settings.sla_first_response_minutes)


def _day(value: str, which: str) -> date | None:
    """A date of the form (empty: none given)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"The {which} date must be a day as YYYY-MM-DD, not {value[:10]!r}.") from None


def _span(service: ReportService, name: str, bucket: str, start: str, end: str) -> Period:
    return service.period(name or "7d", bucket or None, _day(start, "from"), _day(end, "to"))


def _period(request: Request, name: str, bucket: str, start: str, end: str) -> Period:
    try:
        return _span(report_service(request), name, bucket, start, end)
    except ReportError as exc:
        raise HTTPException(400, str(exc)) from exc


# ---------------------------------------------------------------------------------------------- drawing
@dataclass(frozen=True)
class Drawn:
    """A chart as the page shows it: the SVG, its legend, and its table."""

    chart: Chart
    svg: Markup
    legend: list[tuple[str, str]]  # (label, colour)
    header: list[str]
    rows: list[list[str]]
    csv_url: str
    json_url: str


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def draw(chart: Chart, span: Period) -> Drawn:
    query = urlencode(span.query())
    palette = colours(chart.series)
    x_title = "hour (UTC)" if span.bucket == "hour" else "day (UTC)"
    if chart.kind == "bars":
        labels = [str(row[chart.columns[0].key]) for row in chart.rows]
        key = chart.series[0]
        svg = horizontal_bars(
            f"chart-{chart.name}", chart.title, labels, [row.get(key) for row in chart.rows], chart.unit, palette[key]
        )
    else:
        labels = [str(row["bucket"]) for row in chart.rows]
        series = [
            Series(key, chart.label_of(key), [row.get(key) for row in chart.rows], palette[key]) for key in chart.series
        ]
        if chart.kind == "grouped":
            svg = grouped_bars(f"chart-{chart.name}", chart.title, labels, series, chart.unit, x_title)
        elif chart.kind == "stacked":
            svg = stacked_bars(f"chart-{chart.name}", chart.title, labels, series, chart.unit, x_title)
        else:
            top = 100.0 if chart.unit == "%" else None
            svg = lines(f"chart-{chart.name}", chart.title, labels, series, chart.unit, x_title, top=top)
    table = chart.table()
    return Drawn(
        chart, svg, [(chart.label_of(key), palette[key]) for key in chart.series], table[0],
        [[_cell(v) for v in row] for row in table[1:]], f"/reports/{chart.name}.csv?{query}",
        f"/api/reports/{chart.name}?{query}",
    )  # fmt: skip


def chart_csv(chart: Chart) -> str:
    """The chart's table as CSV (RFC 4180), text cells neutralised against spreadsheet formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in chart.table():
        writer.writerow(["" if v is None else neutral_cell(v) if isinstance(v, str) else v for v in row])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- the page
@router.get("/reports", include_in_schema=False)
def reports_page(
    request: Request, viewer: EditorViewer, name: RangeName = "7d", bucket: Bucket = "", start: FromDate = "",
    end: ToDate = "",
) -> Response:  # fmt: skip
    service = report_service(request)
    error = None
    try:
        span = _span(service, name, bucket, start, end)
    except ReportError as exc:
        error, span = str(exc), service.period("7d")
    roles = ("lead",) if viewer.may("lead") else (viewer.role,)
    drawn = [draw(chart, span) for chart in service.charts(span, roles)]
    return render(
        request, "reports.html", viewer, status_code=400 if error else 200, span=span, drawn=drawn, error=error,
        ranges=RANGES, buckets=BUCKETS, chosen={"range": name, "bucket": bucket, "from": start, "to": end},
        faq_only=not viewer.may("lead"),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- CSV and JSON
def _csv_route(spec: ChartSpec) -> Callable[..., Response]:
    def download(
        request: Request, name: RangeName = "7d", bucket: Bucket = "", start: FromDate = "", end: ToDate = ""
    ) -> Response:
        span = _period(request, name, bucket, start, end)
        chart = report_service(request).chart(spec.name, span)
        filename = f"carebot-{spec.name}-{span.start:%Y%m%d}-{span.end:%Y%m%d}.csv"
        return Response(
            chart_csv(chart), media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )  # fmt: skip

    return download


def _json_route(spec: ChartSpec) -> Callable[..., dict[str, Any]]:
    def figures(
        request: Request, name: RangeName = "7d", bucket: Bucket = "", start: FromDate = "", end: ToDate = ""
    ) -> dict[str, Any]:
        span = _period(request, name, bucket, start, end)
        return report_service(request).chart(spec.name, span).to_dict(span)

    figures.__doc__ = (
        "The chart's rows (one per bucket, agent or FAQ entry) with its columns and totals over the range. "
        "Times are UTC; durations in the unit the column names."
    )
    return figures


def _rule(spec: ChartSpec) -> Access:
    return Access(*spec.roles)


for _spec in CHARTS:
    _access = [Depends(_rule(_spec))]
    router.add_api_route(
        f"/reports/{_spec.name}.csv", _csv_route(_spec), methods=["GET"], include_in_schema=False,
        dependencies=_access, name=f"report_csv_{_spec.name}",
    )  # fmt: skip
    api.add_api_route(
        f"/{_spec.name}", _json_route(_spec), methods=["GET"], summary=_spec.summary, dependencies=_access,
        name=f"report_{_spec.name}",
    )  # fmt: skip

router.include_router(api)
