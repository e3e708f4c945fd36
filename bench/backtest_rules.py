"""Backtest a rule on simulated customers: hit rate, score histogram, overlap with the catalogue, as HTML.

Each simulated customer's transactions are folded in delivery order into their features; the rule and
every catalogue rule are evaluated at the end of each of the last ``window`` days of the customer's
history (what a nightly sweep would see; real-time rules see that day's last transaction). Used by
``nudge rules backtest PATH --customers N``.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from core.rules import Catalogue, CompiledRule, RuleOutcome

__all__ = ["BacktestResult", "backtest", "render_html", "render_png"]

BINS = 20


@dataclass
class BacktestResult:
    rule: CompiledRule
    customers: int
    evaluations: int = 0
    eligible_evaluations: int = 0
    customers_hit: int = 0
    scores: list[float] = field(default_factory=list)
    items_per_hit: list[int] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    overlap: Counter[str] = field(default_factory=Counter)  # other rule id -> evaluations eligible together
    others_eligible: Counter[str] = field(default_factory=Counter)
    hits_by_day: Counter[int] = field(default_factory=Counter)  # days before the end -> eligible customers
    samples: list[str] = field(default_factory=list)
    skipped_records: int = 0
    seconds: float = 0.0
    first_day: date | None = None
    last_day: date | None = None


def backtest(rule: CompiledRule, catalogue: Catalogue, customers: int, seed: int, days: int, window: int = 30,
             progress: Callable[[int], None] | None = None) -> BacktestResult:
    """Simulate ``customers`` customers with ``days`` of history and evaluate at the last ``window`` day-ends."""
    from core.features import CustomerState, FoldError, features_at, fold
    from schemas.records import to_transaction
    from simulator.generator import population

    others = [r for r in catalogue.values() if r.id != rule.id]
    result = BacktestResult(rule, customers)
    started = time.perf_counter()
    months = max(2, math.ceil(days / 30))
    start = date(2025, 9, 1)
    for index, sim in enumerate(population(seed, customers, start, months=months)):
        txns = []
        for record in sim.records:
            try:
                txns.append(to_transaction(record))
            except Exception:  # noqa: BLE001 - the simulator's deliberate oddities are not the rule's concern
                result.skipped_records += 1
        if not txns:
            continue
        end = max(t.booked_at for t in txns).date()
        checkpoints = [end - timedelta(days=k) for k in range(window - 1, -1, -1)]
        state = CustomerState()
        hit = False
        pos = 0
        ordered = sorted(txns, key=lambda t: t.booked_at)
        for day in checkpoints:
            while pos < len(ordered) and ordered[pos].booked_at.date() <= day:
                try:
                    fold(state, ordered[pos])
                except FoldError:
                    result.skipped_records += 1
                pos += 1
            as_of = datetime.combine(day, dtime(23, 59, 59), tzinfo=ordered[0].booked_at.tzinfo)
            features = features_at(state, as_of)
            outcome = rule.evaluate(features)
            _record(result, outcome, features, others, (end - day).days)
            hit = hit or outcome.eligible
        result.customers_hit += hit
        result.first_day = min(result.first_day or checkpoints[0], checkpoints[0])
        result.last_day = max(result.last_day or end, end)
        if progress:
            progress(index + 1)
    result.seconds = time.perf_counter() - started
    return result


def _record(result: BacktestResult, outcome: RuleOutcome, features: dict[str, object],
            others: list[CompiledRule], days_before_end: int) -> None:
    result.evaluations += 1
    other_hits = [o.id for o in others if o.evaluate(features).eligible]
    result.others_eligible.update(other_hits)
    if outcome.error:
        result.errors[outcome.error] += 1
    if not outcome.eligible:
        result.reasons[outcome.reasons[0].text if outcome.reasons else "?"] += 1
        return
    result.eligible_evaluations += 1
    result.hits_by_day[days_before_end] += 1
    if outcome.score is not None:
        result.scores.append(outcome.score)
    if outcome.items:
        result.items_per_hit.append(len(outcome.items))
    if outcome.message and len(result.samples) < 6 and outcome.message not in result.samples:
        result.samples.append(outcome.message)
    result.overlap.update(other_hits)


# ---------------------------------------------------------------------- HTML with inline SVG charts
def _histogram_svg(scores: list[float], width: int = 640, height: int = 240) -> str:
    counts = [0] * BINS
    for s in scores:
        counts[min(int(s * BINS), BINS - 1)] += 1
    top = max(counts) or 1
    pad_l, pad_b, pad_t = 48, 34, 12
    bw = (width - pad_l - 10) / BINS
    h = height - pad_b - pad_t
    bars = []
    for i, c in enumerate(counts):
        bh = h * c / top
        x = pad_l + i * bw
        bars.append(f'<rect x="{x + 1:.1f}" y="{pad_t + h - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" '
                    f'fill="#2f6fde"><title>{i / BINS:.2f}–{(i + 1) / BINS:.2f}: {c}</title></rect>')
        if c:
            bars.append(f'<text x="{x + bw / 2:.1f}" y="{pad_t + h - bh - 3:.1f}" font-size="10" '
                        f'text-anchor="middle">{c}</text>')
    ticks = "".join(f'<text x="{pad_l + t * (width - pad_l - 10):.1f}" y="{height - 16}" font-size="11" '
                    f'text-anchor="middle">{t:.1f}</text>' for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0))
    axis = (f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{width - 10}" y2="{pad_t + h}" stroke="#333"/>'
            f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" stroke="#333"/>'
            f'<text x="{pad_l - 6}" y="{pad_t + 10}" font-size="11" text-anchor="end">{top}</text>'
            f'<text x="{pad_l - 6}" y="{pad_t + h}" font-size="11" text-anchor="end">0</text>'
            f'<text x="{(width + pad_l) / 2}" y="{height - 2}" font-size="12" text-anchor="middle">score</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="histogram of scores">{axis}{ticks}{"".join(bars)}</svg>')


def _hbar_svg(rows: list[tuple[str, float, str]], width: int = 720, colour: str = "#d9822b",
             label_w: int = 230) -> str:
    row_h = 22
    height = row_h * len(rows) + 8
    out = []
    for i, (label, frac, note) in enumerate(rows):
        y = 4 + i * row_h
        bw = (width - label_w - 190) * max(0.0, min(frac, 1.0))
        shown = label if len(label) <= label_w // 7 else label[: label_w // 7 - 1] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end">'
                   f'<title>{html.escape(label)}</title>{html.escape(shown)}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" fill="{colour}"/>'
                   f'<text x="{label_w + bw + 6:.1f}" y="{y + 15}" font-size="12">{html.escape(note)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'{"".join(out)}</svg>')


def render_html(res: BacktestResult, seed: int, days: int) -> str:
    rule = res.rule
    ev = max(res.evaluations, 1)
    hit_rate = res.customers_hit / max(res.customers, 1)
    eval_rate = res.eligible_evaluations / ev
    overlap_rows = []
    for other, both in res.overlap.most_common(10):
        share = both / max(res.eligible_evaluations, 1)
        union = res.eligible_evaluations + res.others_eligible[other] - both
        overlap_rows.append((other, share, f"{share:.0%} of hits · Jaccard {both / max(union, 1):.2f}"))
    reason_rows = [(text, n / ev, f"{n / ev:.0%}") for text, n in res.reasons.most_common(6)]
    days_rows = "".join(f"<td>{res.hits_by_day.get(k, 0)}</td>" for k in range(29, -1, -1))
    mean = sum(res.scores) / len(res.scores) if res.scores else float("nan")
    items = (f"<li>items per eligible evaluation: mean {sum(res.items_per_hit) / len(res.items_per_hit):.2f}, "
             f"max {max(res.items_per_hit)}</li>") if res.items_per_hit else ""
    errors = "".join(f"<li><code>{html.escape(e)}</code> × {n}</li>" for e, n in res.errors.most_common(5))
    samples = "".join(f"<li>{html.escape(m)}</li>" for m in res.samples) or "<li>(no eligible evaluation)</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest {html.escape(rule.id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 760px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 16px; margin: 22px 0 6px; }}
.kpis {{ display: flex; gap: 14px; }} .kpi {{ border: 1px solid #ddd; border-radius: 8px; padding: 10px 14px; }}
.kpi b {{ display: block; font-size: 24px; }} .muted {{ color: #666; font-size: 13px; }}
table {{ border-collapse: collapse; font-size: 11px; }} td {{ border: 1px solid #eee; padding: 2px 4px; }}
</style></head><body>
<h1>Backtest: {html.escape(rule.title)}</h1>
<div class="muted">rule <code>{html.escape(rule.id)}</code> v{rule.version} · {rule.kind}, trigger {rule.trigger}
 · {res.customers} simulated customers (seed {seed}, {days} days of history) · evaluated at the last 30 day-ends
 ({res.first_day} to {res.last_day}) · {res.evaluations} evaluations in {res.seconds:.1f} s</div>
<div class="kpis" style="margin-top:14px">
<div class="kpi"><b>{hit_rate:.1%}</b>customers hit at least once</div>
<div class="kpi"><b>{eval_rate:.1%}</b>of daily evaluations eligible</div>
<div class="kpi"><b>{mean:.2f}</b>mean score when eligible</div>
</div>
<h2>Scores when eligible ({len(res.scores)} evaluations)</h2>
{_histogram_svg(res.scores)}
<h2>Overlap with the catalogue (share of this rule's hits where the other rule is also eligible)</h2>
{_hbar_svg(overlap_rows) if overlap_rows else '<p class="muted">no overlap: no other rule was eligible at the same time</p>'}
<h2>Why not eligible (first failing condition)</h2>
{_hbar_svg(reason_rows, colour="#8a8a8a", label_w=400) if reason_rows else '<p class="muted">always eligible</p>'}
<h2>Eligible customers per day (oldest → newest)</h2>
<table><tr>{days_rows}</tr></table>
<h2>Details</h2>
<ul>{items}<li>records the simulator produced that were skipped: {res.skipped_records}</li>
<li>runtime errors: {sum(res.errors.values())}</li>{errors}</ul>
<h2>Sample messages</h2><ul>{samples}</ul>
</body></html>
"""


def render_png(html_path: Path, png_path: Path, width: int = 820, height: int = 1400) -> Path:
    """Screenshot the report with headless chromium (the only browser this project assumes)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise RuntimeError("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={png_path}",
             html_path.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )
    return png_path
