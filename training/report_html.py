"""The uplift report a marketer opens in a browser: one self-contained HTML page.

Plotly's JavaScript is embedded once, so the page needs no network to view.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go

from training.metrics import QiniCurve

__all__ = ["render_report"]

POLICY_LABELS = {
    "nudge_replay": "Nudge policy (replay through the API)",
    "nudge_replay_late": "Nudge policy, second half of the replay (after learning)",
    "explore_replay": "Its 5 % uniform exploration slice (replay)",
    "holdout_replay": "Its holdout: no e-mail (replay)",
    "nudge_ips": "Nudge's learned greedy policy (IPS)",
    "random": "Uniform random",
    "mens_email": "Always Mens e-mail",
    "womens_email": "Always Womens e-mail",
    "no_email": "Never e-mail",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; width: 100%; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { background: #f6f6f0; padding: 0.6rem 1rem; border-left: 4px solid #c9b458; }
"""


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _policy_figure(values: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    names = list(values)
    means = [values[n]["mean"] for n in names]
    lows = [values[n]["mean"] - values[n]["ci95"][0] for n in names]
    highs = [values[n]["ci95"][1] - values[n]["mean"] for n in names]
    fig = go.Figure(
        go.Bar(
            x=[POLICY_LABELS.get(n, n) for n in names],
            y=means,
            error_y={"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
            marker_color=["#2b6cb0" if n.startswith("nudge") else "#a0aec0" for n in names],
        )
    )
    fig.update_layout(
        title="Visit rate by policy (95 % confidence intervals)",
        yaxis_tickformat=".1%",
        height=420,
        margin={"t": 50, "b": 120},
    )
    return fig


def _lift_figure(lifts: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    arms = list(lifts)
    fig = go.Figure(
        go.Bar(
            x=arms,
            y=[lifts[a]["absolute"] for a in arms],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [lifts[a]["ci95"][1] - lifts[a]["absolute"] for a in arms],
                "arrayminus": [lifts[a]["absolute"] - lifts[a]["ci95"][0] for a in arms],
            },
            marker_color="#38a169",
        )
    )
    fig.update_layout(
        title="Added visit rate against no e-mail (95 % confidence intervals)",
        yaxis_tickformat=".1%",
        height=380,
    )
    return fig


def _qini_figure(curves: Mapping[str, QiniCurve]) -> go.Figure:
    fig = go.Figure()
    for arm, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve.fraction, y=curve.gain, mode="lines", name=arm))
        fig.add_trace(
            go.Scatter(
                x=[0.0, 1.0],
                y=[0.0, float(curve.gain[-1])],
                mode="lines",
                line={"dash": "dot"},
                name=f"{arm}: random targeting",
            )
        )
    fig.update_layout(
        title="Qini curves on held-out customers (incremental visits per customer targeted)",
        xaxis_title="share of customers targeted, best-scored first",
        yaxis_title="incremental visits per customer",
        xaxis_tickformat=".0%",
        height=420,
    )
    return fig


def _policy_table(values: Mapping[str, Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(POLICY_LABELS.get(n, n))}</td><td>{_pct(v['mean'])}</td>"
        f"<td>{_pct(v['ci95'][0])} – {_pct(v['ci95'][1])}</td><td>{v['n']:,}</td></tr>"
        for n, v in values.items()
    )
    return (
        "<table id='policy-table'><tr><th>policy</th><th>visit rate</th><th>95 % CI</th>"
        f"<th>n</th></tr>{rows}</table>"
    )


def _lift_table(lifts: Mapping[str, Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{_pct(v['treated'])}</td><td>{_pct(v['control'])}</td>"
        f"<td>{_pct(v['absolute'])}</td><td>{_pct(v['ci95'][0])} – {_pct(v['ci95'][1])}</td>"
        f"<td>{100 * v['relative']:.0f} %</td><td>{100 * v['prob_positive']:.1f} %</td>"
        f"<td>{v['n_treated']:,} / {v['n_control']:,}</td></tr>"
        for a, v in lifts.items()
    )
    return (
        "<table id='lift-table'><tr><th>arm</th><th>treated</th><th>no e-mail</th>"
        "<th>added</th><th>95 % CI</th><th>relative</th><th>P(effect &gt; 0)</th>"
        f"<th>n treated / control</th></tr>{rows}</table>"
    )


def render_report(summary: Mapping[str, Any], qini_curves: Mapping[str, QiniCurve]) -> str:
    """Render the demo summary and the Qini curves as one self-contained page."""
    values = summary["policy_value"]
    lifts = summary["lift_vs_no_email"]
    model = summary["model"]
    figures = [_lift_figure(lifts), _qini_figure(qini_curves), _policy_figure(values)]
    charts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{i}")
        for i, fig in enumerate(figures)
    ]
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nudge uplift report</title>
<style>{_STYLE}</style></head><body>
<h1>Uplift report — Hillstrom e-mail experiment</h1>
<p class="sub">{summary["data"]["rows"]:,} customers, {summary["data"]["test_rows"]:,} held out
for evaluation · model {html.escape(model["name"])} v{html.escape(str(model["version"]))}
(alias {html.escape(model["alias"])}) · made {created}</p>
<h2>What each e-mail added</h2>
<p>Customers were assigned at random to a Mens e-mail, a Womens e-mail or no e-mail, so the
difference in visit rate against the no-e-mail group is what the e-mail caused.</p>
{_lift_table(lifts)}
{charts[0]}
<h2>Who to target</h2>
<p>A Qini curve above its dotted line means the model ranks the customers who respond
<em>because of</em> the e-mail first.</p>
{charts[1]}
<h2>How the policies compare</h2>
{_policy_table(values)}
{charts[2]}
<p class="note">The replay value counts only the held-out customers for whom the policy chose
the arm they really received ({values["nudge_replay"]["n"]:,} of
{summary["replay"]["decisions"]:,}); its interval is correspondingly wider. Intervals are
normal approximations.</p>
</body></html>
"""
