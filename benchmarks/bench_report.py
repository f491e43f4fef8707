"""The benchmark's table: every figure beside its target, met or not."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["TARGETS", "best_http", "table"]

TARGETS = {
    "http_per_s": 2000.0,
    "http_p99_ms": 10.0,
    "http_share_of_echo": 0.35,
    "in_process_p50_ms": 1.0,
    "in_process_p99_ms": 3.0,
    "outcomes_per_s": 10_000.0,
}


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


_OUTCOME_ROWS = (
    ("outcomes_same_engine", "outcomes/s, same engine (1)"),
    ("outcomes_from_log", "outcomes/s, fresh engine (2)"),
    ("outcomes_batched", "outcomes/s, batches of 100 (2)"),
)


def _in_process_table(results: dict[str, Any]) -> list[str]:
    t = TARGETS
    lines = [
        f"In process: {results['setup']['joint_actions']} joint actions + no send, full contact "
        "policy, holdout and logging on; medians of rounds",
        f"{'storage':<10}{'figure':<34}{'value':>12}   {'target':<13}",
    ]
    for storage, figures in results["in_process"].items():
        if "skipped" in figures:
            lines.append(f"{storage:<10}skipped: {figures['skipped']}")
            continue
        decide = figures["decide"]
        rows: list[tuple[str, str, str, bool | None]] = [
            ("decide p50", f"{decide['p50_ms']:.2f} ms", "≤ 1 ms", decide["p50_ms"] <= 1),
            ("decide p99", f"{decide['p99_ms']:.2f} ms", "≤ 3 ms", decide["p99_ms"] <= 3),
            ("decisions/s, one caller", f"{decide['per_s']:,.0f}/s", "", None),
        ]
        for key, label in _OUTCOME_ROWS:
            value = figures.get(key)
            if value is not None:
                ok = value["per_s"] >= t["outcomes_per_s"]
                rows.append((label, f"{value['per_s']:,.0f}/s", "≥ 10,000/s", ok))
        for label, shown, target, ok in rows:
            verdict = "" if ok is None else _met(ok)
            lines.append(f"{storage:<10}{label:<34}{shown:>12}   {target:<13}{verdict}")
        full = decide.get("garbage_collections", {}).get("gen2")
        if full:
            lines.append(
                f"{storage:<10}full garbage collections while timing: {full['count']}, "
                f"the longest {full['max_ms']:.0f} ms"
            )
    lines.append(
        "(1) the decisions are still in the deciding engine's memory; (2) a fresh engine reads "
        "them from the log, as another worker would"
    )
    return lines


def _http_table(results: dict[str, Any]) -> list[str]:
    t = TARGETS
    http = results.get("http") or {"skipped": "not run"}
    if "skipped" in http:
        return [f"Over HTTP: skipped: {http['skipped']}"]
    plan = results["plan"]
    lines = [
        f"Over HTTP: wrk (1 thread, on the same cores), medians of {plan['http_repeats']} "
        f"run(s) of {plan['http_seconds']:.0f} s; cpu = server CPU ms per request",
        f"{'storage':<9}{'wrk':>4}{'conns':>6}{'decide/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non2xx':>7}{'cpu':>6}{'echo/s':>8}{'cpu':>6}{'share':>6}"
        f"  {'≥2000/s':>7} {'p99≤10':>6} {'≥35%':>4}  target",
    ]
    for storage, failure in http.get("failures", {}).items():
        lines.append(f"{storage}: FAILED: {failure}")
    for row in http["rows"]:
        d, e, share = row["decide"], row["echo"], row["decide_share_of_echo"]
        checks = (
            d["per_s"] >= t["http_per_s"],
            d["p99_ms"] <= t["http_p99_ms"],
            share >= t["http_share_of_echo"],
        )
        yes = ["yes" if ok else "no" for ok in checks]
        lines.append(
            f"{row['storage']:<9}{row['workers']:>4}{row['connections']:>6}{d['per_s']:>10,.0f}"
            f"{d['p50_ms']:>8.1f}{d['p99_ms']:>8.1f}{d['non_2xx']:>7}"
            f"{_cpu(d):>6}{e['per_s']:>8,.0f}{_cpu(e):>6}{share:>6.0%}"
            f"  {yes[0]:>7} {yes[1]:>6} {yes[2]:>4}  {_met(all(checks))}"
        )
    lines.append("wrk = server worker processes; share = decide/s ÷ echo/s at the same settings")
    seconds = float(plan["http_seconds"])
    others = [
        float(row[app]["other_cpu_s"]) / seconds
        for row in http["rows"]
        for app in ("decide", "echo")
        if row[app].get("other_cpu_s") is not None
    ]
    if others:
        lines.append(
            f"other processes used {statistics.median(others):.2f} cores (median; at most "
            f"{max(others):.2f}) beside the server and wrk, Redis and Postgres included"
        )
    best = http.get("best")
    if best:
        lines.append(
            "HTTP target (≥ 2,000 decisions/s at p99 ≤ 10 ms, ≥ 35 % of echo): "
            f"{_met(best['met'])}. Closest: {best['storage']}, {best['workers']} worker(s), "
            f"{best['connections']} connections: {best['per_s']:,.0f}/s at p99 "
            f"{best['p99_ms']:.1f} ms, {best['share']:.0%} of echo"
        )
    return lines


def _cpu(figures: dict[str, Any]) -> str:
    value = figures.get("server_cpu_ms_per_request")
    return "-" if value is None else f"{value:.2f}"


def table(results: dict[str, Any]) -> str:
    return "\n".join(["", *_in_process_table(results), "", *_http_table(results)])


def best_http(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row that comes closest: most decisions/s among rows within the p99 target, if any."""
    if not rows:
        return None
    within = [r for r in rows if r["decide"]["p99_ms"] <= TARGETS["http_p99_ms"]]
    row = max(within or rows, key=lambda r: float(r["decide"]["per_s"]))
    met = (
        row["decide"]["per_s"] >= TARGETS["http_per_s"]
        and row["decide"]["p99_ms"] <= TARGETS["http_p99_ms"]
        and row["decide_share_of_echo"] >= TARGETS["http_share_of_echo"]
    )
    return {
        "storage": row["storage"],
        "workers": row["workers"],
        "connections": row["connections"],
        "per_s": row["decide"]["per_s"],
        "p99_ms": row["decide"]["p99_ms"],
        "share": row["decide_share_of_echo"],
        "met": met,
    }
