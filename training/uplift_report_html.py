"""The uplift report as one self-contained HTML page: tables, charts and the JSON behind them.

Plotly's JavaScript is embedded once, so the page needs no network to view.
The page is drawn from :meth:`UpliftReport.to_json` alone, and that JSON is
embedded in it (``<script type="application/json" id="report-data">``). Every
value a table shows sits in an element carrying ``data-key="<table>.<row>.<column>"``
(the row is its index in that table's JSON list) and ``data-format`` (how it is
written, see :func:`cell_text`), so a test can check the page against the JSON.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from training.logged_policy_values import ESTIMATORS
from training.report_format import KINDS, format_value
from training.uplift_report import UpliftReport

__all__ = ["CHART_IDS", "cell_text", "render_uplift_html"]

CHART_IDS: tuple[str, ...] = ("chart-lift", "chart-trend", "chart-qini", "chart-policy")
"""The id of each chart's element, in page order."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; width: 100%; font-size: 0.9rem; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; }
td:not(.text) { white-space: nowrap; }
td .ci { color: #666; font-size: 0.8rem; white-space: nowrap; }
.scroll { overflow-x: auto; }
tr.warning td { white-space: normal; text-align: left; color: #8a5a00; background: #fff8e6;
                font-size: 0.85rem; }
.note { background: #f6f6f0; padding: 0.6rem 1rem; border-left: 4px solid #c9b458; }
.warnings { background: #fff4e5; padding: 0.6rem 1rem; border-left: 4px solid #dd8a00; }
.label { display: inline-block; font-size: 0.75rem; padding: 0.1rem 0.4rem; border-radius: 3px;
         background: #eee; color: #555; vertical-align: middle; }
"""

Part = str | tuple[str, str] | tuple[str, str, str]
"""A piece of a table cell: literal text; (column, format) of the row's JSON value; or
(low column, high column, format): a 95 % interval, on a line of its own."""

_LIFT_CELLS: list[tuple[str, list[Part]]] = [
    ("Decisions: treated / holdout", [("n_treated", "count"), " / ", ("n_holdout", "count")]),
    (
        "Conversion: treated / holdout",
        [("conversion_rate_treated", "percent"), " / ", ("conversion_rate_holdout", "percent")],
    ),
    ("Lift (95 % CI)", [("lift", "points"), ("lift_ci_low", "lift_ci_high", "points")]),
    ("Relative lift", [("relative_lift", "relative")]),
    ("P(effect > 0)", [("prob_positive", "probability")]),
    (
        "Incremental conversions (95 % CI)",
        [
            ("incremental_conversions", "signed_count"),
            ("incremental_conversions_ci_low", "incremental_conversions_ci_high", "signed_count"),
        ],
    ),
    (
        "Revenue per customer: treated / holdout",
        [
            ("revenue_per_customer_treated", "money"),
            " / ",
            ("revenue_per_customer_holdout", "money"),
        ],
    ),
    (
        "Incremental revenue (95 % CI)",
        [
            ("incremental_revenue", "signed_money"),
            ("incremental_revenue_ci_low", "incremental_revenue_ci_high", "signed_money"),
        ],
    ),
]

_JOURNEY_CELLS: list[tuple[str, list[Part]]] = [("Journey", [("journey", "text")]), *_LIFT_CELLS]

_ACTION_CELLS: list[tuple[str, list[Part]]] = [
    ("Journey", [("journey", "text")]),
    ("Sent", [("part", "text"), ": ", ("value", "text")]),
    *_LIFT_CELLS,
]

_POLICY_CELLS: list[tuple[str, list[Part]]] = [
    ("Policy", [("label", "text")]),
    ("Estimator", [("estimator", "estimator")]),
    ("Mean reward per decision (95 % CI)", [("value", "value"), ("ci_low", "ci_high", "value")]),
    ("Effective decisions", [("effective_n", "count")]),
]

_QINI_CELLS: list[tuple[str, list[Part]]] = [
    ("Journey", [("journey", "text")]),
    ("Model", [("model_version", "text")]),
    ("Sends / holdout scored", [("n_treated", "count"), " / ", ("n_control", "count")]),
    ("Qini coefficient", [("qini_coefficient", "value")]),
    ("Average effect", [("average_effect", "points")]),
]

_POLICY_COLOURS = {"on_policy": "#2b6cb0", "ips": "#a0aec0", "snips": "#718096", "dr": "#38a169"}


def cell_text(kind: str, value: Any) -> str:
    """What a table shows for a JSON ``value`` of ``kind`` (a ``data-format``).

    The numeric kinds are those of :func:`training.report_format.format_value`;
    ``text`` is shown as it is (None as "n/a"), ``estimator`` by its name.

    >>> cell_text("points", 0.0387), cell_text("estimator", "dr"), cell_text("text", "welcome")
    ('+3.87 pts', 'doubly robust', 'welcome')
    """
    if kind == "text":
        return "n/a" if value is None else str(value)
    if kind == "estimator":
        return ESTIMATORS.get(str(value), str(value))
    if kind not in KINDS:
        raise ValueError(f"unknown cell format {kind!r}")
    return format_value(kind, value)


def render_uplift_html(report: UpliftReport, *, csv_links: Mapping[str, str] | None = None) -> str:
    """The whole page; ``csv_links`` maps a table's name to where its CSV can be downloaded."""
    data = report.to_json()
    figures = [
        (CHART_IDS[0], _lift_figure(data["journeys"])),
        (CHART_IDS[1], _trend_figure(data["trends"])),
        (CHART_IDS[2], _qini_figure(data["qini"], data["qini_summary"])),
        (CHART_IDS[3], _policy_figure(data["policy_values"])),
    ]
    charts = {
        div_id: figure.to_html(
            full_html=False, include_plotlyjs=(i == 0), div_id=div_id, config={"responsive": True}
        )
        for i, (div_id, figure) in enumerate(figures)
    }
    summary = data["summary"]
    filters = data["filters"]
    journey = filters["journey"] or "all journeys"
    since = filters["since"] or "the first decision"
    window = (
        "decisions whose attribution window has closed"
        if filters["closed_windows_only"]
        else "every decision, including those whose attribution window is still open"
    )
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    holdout_percent = f"{summary['holdout_percent']:g}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nudge uplift report</title>
<style>{_STYLE}</style></head><body>
<h1>Uplift report</h1>
<p class="sub" id="generated">Generated {html.escape(data["generated_at"])} ·
{_count(summary["analysed"])} decisions analysed of {_count(summary["decisions"])} read
({_count(summary["cancelled"])} cancelled, left out)</p>
<p class="sub" id="filters">Filters: {html.escape(journey)} · since {html.escape(since)} ·
{window} · groups under {_count(filters["min_group"])} decisions are too small to conclude</p>
{_warnings(data)}
<p class="note">The <strong>holdout</strong> is a random share of customers (currently
{holdout_percent} %), picked by a hash of their id, who are never contacted. Every other decision
of the journey counts as treated, whatever the policy chose for it (intention to treat), so the
difference between the two groups is what the journey's contacts added. The 95 % intervals are
normal (Welch) intervals of that difference; P(effect &gt; 0) is how likely a positive effect is
under the same approximation.</p>

<h2>What each journey added</h2>
{_table("journeys", data["journeys"], _JOURNEY_CELLS)}
{charts["chart-lift"]}

<h2>Over time</h2>
<p>Conversion rate per day (UTC) of the treated decisions and of the holdout.</p>
{charts["chart-trend"]}

<h2>By message, channel and send-time slot <span class="label">descriptive</span></h2>
<p>Decisions that sent each message, on each channel and in each slot, against the same
holdout. The policy chose whom to send each one to, so these rows describe what happened; only
the journey rows above are randomised estimates of what contacting caused.</p>
{_table("actions", data["actions"], _ACTION_CELLS)}

<h2>Who to target: the current model's Qini curve</h2>
<p>Decisions ranked by the model's expected uplift (the best send's prior minus the prior of not
sending), sends against the holdout. A curve above its dotted line means the model ranks the
customers a message helps first; the Qini coefficient is the area between them.</p>
{_table("qini_summary", data["qini_summary"], _QINI_CELLS)}
{charts["chart-qini"]}

<h2>The live policy against alternatives</h2>
<p class="note">Each value is the mean reward per decision (conversion value inside the
attribution window, minus the channel's cost) a policy would have earned on the logged decisions
outside the holdout, estimated from the probabilities the live policy logged. <strong>IPS</strong>
reweights each decision where the policy would have done what was logged by one over the logged
probability; <strong>SNIPS</strong> divides by the sum of those weights instead of the count (a
little bias, much less variance); <strong>doubly robust</strong> starts from the model's estimated
reward of the action the policy would choose and corrects it with the reweighted errors. The
on-policy mean is what the live policy really earned. Intervals are 95 % bootstrap intervals over
decisions (the on-policy one is normal). <em>Effective decisions</em> is how many decisions an
estimate really rests on. The best fixed action is picked on the same data, so its value is
somewhat optimistic.</p>
{_table("policy_values", data["policy_values"], _POLICY_CELLS)}
{charts["chart-policy"]}
{_csv_links(csv_links)}
<script type="application/json" id="report-data">{payload}</script>
</body></html>
"""


def _count(value: int) -> str:
    return format_value("count", value)


def _warnings(data: Mapping[str, Any]) -> str:
    items = [html.escape(text) for text in data["warnings"]]
    if not items:
        return ""
    listed = "".join(f"<li>{item}</li>" for item in items)
    return (
        '<div class="warnings" id="warnings"><strong>Read with care</strong>'
        f"<ul>{listed}</ul></div>"
    )


def _table(
    name: str, rows: Sequence[Mapping[str, Any]], cells: list[tuple[str, list[Part]]]
) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in cells)
    if not rows:
        body = f'<tr><td colspan="{len(cells)}">No rows yet.</td></tr>'
        return (
            f'<table id="table-{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )
    lines = []
    for i, row in enumerate(rows):
        tds = "".join(_cell(name, i, row, parts) for _, parts in cells)
        lines.append(f"<tr>{tds}</tr>")
        warning = row.get("warning")
        if warning:
            lines.append(
                f'<tr class="warning"><td colspan="{len(cells)}" data-key="{name}.{i}.warning" '
                f'data-format="text">{html.escape(str(warning))}</td></tr>'
            )
    return _wrap(name, head, "".join(lines))


def _wrap(name: str, head: str, body: str) -> str:
    return (
        f'<div class="scroll"><table id="table-{name}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _cell(name: str, i: int, row: Mapping[str, Any], parts: list[Part]) -> str:
    def value(column: str, kind: str) -> str:
        text = html.escape(cell_text(kind, row[column]))
        return f'<span data-key="{name}.{i}.{column}" data-format="{kind}">{text}</span>'

    pieces = []
    text_only = True
    for part in parts:
        if isinstance(part, str):
            pieces.append(html.escape(part))
        elif len(part) == 2:
            column, kind = part
            text_only = text_only and kind in ("text", "estimator")
            pieces.append(value(column, kind))
        else:
            low, high, kind = part
            pieces.append(f'<div class="ci">{value(low, kind)} to {value(high, kind)}</div>')
    css = ' class="text"' if text_only else ""
    return f"<td{css}>{''.join(pieces)}</td>"


def _csv_links(links: Mapping[str, str] | None) -> str:
    if not links:
        return ""
    items = "".join(
        f'<li><a href="{html.escape(url, quote=True)}" download>{html.escape(name)}.csv</a></li>'
        for name, url in links.items()
    )
    return f'<h2>Download the tables</h2><ul id="csv-links">{items}</ul>'


def _empty(figure: go.Figure, message: str) -> go.Figure:
    figure.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font_size=14
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def _error_bars(
    values: list[float | None], lows: list[float | None], highs: list[float | None]
) -> dict[str, Any]:
    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    return {
        "type": "data",
        "symmetric": False,
        "array": [gap(h, v) for v, h in zip(values, highs, strict=True)],
        "arrayminus": [gap(v, lo) for v, lo in zip(values, lows, strict=True)],
    }


def _scaled(values: Sequence[float | None], by: float) -> list[float | None]:
    return [None if v is None else v * by for v in values]


def _lift_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title="Added conversion rate against the holdout (95 % confidence intervals)",
        yaxis_title="percentage points",
        height=380,
        margin={"t": 60},
    )
    rows = [row for row in rows if row["lift"] is not None]
    if not rows:
        return _empty(figure, "No journey has both treated and holdout decisions yet.")
    lifts = _scaled([row["lift"] for row in rows], 100)
    lows = _scaled([row["lift_ci_low"] for row in rows], 100)
    highs = _scaled([row["lift_ci_high"] for row in rows], 100)
    colours = [
        "#38a169" if (lo or 0) > 0 else "#e53e3e" if (hi or 0) < 0 else "#a0aec0"
        for lo, hi in zip(lows, highs, strict=True)
    ]
    figure.add_trace(
        go.Bar(
            x=[row["journey"] for row in rows],
            y=lifts,
            error_y=_error_bars(lifts, lows, highs),
            marker_color=colours,
            hovertemplate="%{x}: %{y:+.2f} pts<extra></extra>",
        )
    )
    figure.update_layout(yaxis_ticksuffix=" pts")
    return figure


def _trend_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title="Conversion rate per day: treated (solid) and holdout (dotted)",
        yaxis_title="conversion rate",
        yaxis_ticksuffix=" %",
        height=400,
        margin={"t": 60},
    )
    if not rows:
        return _empty(figure, "No decisions to show yet.")
    palette = ["#2b6cb0", "#38a169", "#d69e2e", "#805ad5", "#e53e3e", "#319795"]
    journeys = sorted({row["journey"] for row in rows})
    for j, journey in enumerate(journeys):
        mine = [row for row in rows if row["journey"] == journey]
        colour = palette[j % len(palette)]
        for arm, dash in (("treated", "solid"), ("holdout", "dot")):
            figure.add_trace(
                go.Scatter(
                    x=[row["day"] for row in mine],
                    y=_scaled([row[f"conversion_rate_{arm}"] for row in mine], 100),
                    customdata=[row[f"n_{arm}"] for row in mine],
                    mode="lines+markers",
                    line={"color": colour, "dash": dash},
                    name=f"{journey}: {arm}",
                    hovertemplate="%{x}: %{y:.2f} % of %{customdata:,} decisions<extra></extra>",
                )
            )
    return figure


def _qini_figure(
    points: Sequence[Mapping[str, Any]], summaries: Sequence[Mapping[str, Any]]
) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title="Qini curves of the current model (incremental conversions per decision)",
        xaxis_title="share of decisions targeted, highest expected uplift first",
        yaxis_title="incremental conversions per decision",
        xaxis_tickformat=".0%",
        height=420,
        margin={"t": 60},
    )
    if not points:
        reasons = [s["warning"] for s in summaries if s.get("warning")]
        return _empty(figure, reasons[0] if reasons else "No Qini curve yet.")
    for summary in summaries:
        mine = [p for p in points if p["journey"] == summary["journey"]]
        if not mine:
            continue
        name = str(summary["journey"])
        figure.add_trace(
            go.Scatter(
                x=[p["fraction"] for p in mine],
                y=[p["gain"] for p in mine],
                mode="lines",
                name=name,
            )
        )
        figure.add_trace(
            go.Scatter(
                x=[p["fraction"] for p in mine],
                y=[p["random_gain"] for p in mine],
                mode="lines",
                line={"dash": "dot"},
                name=f"{name}: random targeting",
            )
        )
    return figure


def _policy_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title="Mean reward per decision by policy (95 % confidence intervals)",
        yaxis_title="mean reward per decision",
        barmode="group",
        height=440,
        margin={"t": 60, "b": 140},
    )
    if not rows:
        return _empty(figure, "No decisions outside the holdout to evaluate yet.")
    for estimator, name in ESTIMATORS.items():
        mine = [row for row in rows if row["estimator"] == estimator]
        if not mine:
            continue
        values = [row["value"] for row in mine]
        figure.add_trace(
            go.Bar(
                x=[row["label"] for row in mine],
                y=values,
                name=name,
                marker_color=_POLICY_COLOURS[estimator],
                error_y=_error_bars(
                    values, [row["ci_low"] for row in mine], [row["ci_high"] for row in mine]
                ),
            )
        )
    return figure
