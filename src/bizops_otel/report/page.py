"""The report as one self-contained HTML page: styles, charts and its only script inline.

The page loads nothing: a Content-Security-Policy forbids every fetch, so it opens the
same from a file:// URL offline, from a mail attachment or from the demo's live route.
Every label is escaped (:func:`svg.text`): page groups, campaigns and variants are names
that traffic chose. The one script records script errors into the page itself
(``#script-errors``), where a test or a reader can see them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from .. import stats
from .._version import __version__
from ..aggregate._layout import LOWEST, bucket_edges
from ..analytics.health import CampaignHealth
from ..analytics.sessions import REPRESENTATIVE, Projection
from ..analytics.significance import TestResult, interval
from . import svg
from .content import Group, Report, Variants
from .svg import latency_label, text

#: The only policy the page needs: inline styles and script, nothing fetched.
POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
          "img-src data:")
#: Records every script error into #script-errors; the first script on the page.
ERROR_HOOK = """<script>
window.addEventListener("error", function (event) {
  var box = document.getElementById("script-errors");
  if (!box) { box = document.createElement("pre"); box.id = "script-errors";
              document.documentElement.appendChild(box); }
  box.hidden = false;
  box.textContent += (event.message || "error") + "\\n";
});
</script>"""
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;
margin:0 auto;max-width:1080px;padding:16px 24px 48px;background:#fbfbfa}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:32px 0 6px;
border-bottom:1px solid #d9dce0;padding-bottom:4px}h3{font-size:16px;margin:0 0 4px}
.meta,.note,.explain{color:#5b6470;font-size:13px}.explain{max-width:820px}
#summary ul{font-size:17px;padding-left:20px}#summary li{margin:4px 0}
table{border-collapse:collapse;font-size:13.5px;margin:6px 0}
th,td{padding:4px 8px;text-align:right;border-bottom:1px solid #eceef0;vertical-align:middle}
th{font-weight:600;color:#3b434c;background:#f2f3f4}
td{white-space:nowrap}td .note{display:block}
td.name,th.name{text-align:left;font-weight:600}
td.why{text-align:left;color:#5b6470;white-space:normal;min-width:9em}
tr.few td{color:#9aa1a9}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:10px 12px}
p.optimal{margin:2px 0 4px}p.optimal b{color:#6a1b9a}
svg text{font:11px system-ui,sans-serif;fill:#5b6470}
.axis,.zero{stroke:#8a939c;stroke-width:1}.grid{stroke:#eceef0}
.bar{fill:#90a4c8}.bar.sparse{fill:#d6d9dd}
.band{fill:#e65100;fill-opacity:.16;stroke:none}
.rate{fill:none;stroke:#e65100;stroke-width:2}
.sparse-point{fill:#b0b6bc}
line.optimal{stroke:#6a1b9a;stroke-width:1.5;stroke-dasharray:4 3}
text.optimal-label{fill:#6a1b9a;font-weight:600}
.cost{fill:#c62828}.gain{fill:#1565c0}.track{fill:#eceef0}.share{fill:#78909c}
.whisker{stroke:#5b6470;stroke-width:1.5}
.state{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;
font-size:12px;text-transform:uppercase}
.state.ok{background:#2e7d32}.state.degraded{background:#ef8f00}
.state.failing{background:#c62828}.state.warming_up{background:#9e9e9e}
.signif{font-weight:600}
#script-errors{color:#c62828}
"""


def _ms(seconds: float) -> str:
    return latency_label(seconds)


def _pct(rate: float, digits: int = 1) -> str:
    return "-" if not math.isfinite(rate) else f"{rate * 100:.{digits}f}%"


def _points(change: float, digits: int = 2) -> str:
    return "-" if not math.isfinite(change) else f"{change * 100:+.{digits}f} pt"


def _score(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.4f}"


def _money(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+,.0f}"


def _bracket(low: str, high: str) -> str:
    return f'<span class="note">[{low}, {high}]</span>'


# Sections ---------------------------------------------------------------------------------
def _header(report: Report) -> str:
    snapshot = report.snapshot
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot.taken_ns / 1e9))
    total = snapshot.total()
    period = (f" over {report.period_s / 3600:,.1f} h" if math.isfinite(report.period_s)
              and report.period_s > 0 else "")
    return (f'<header><h1>{text(report.title)}</h1><p class="meta">Taken {taken} · '
            f'{total.count:,} requests and {report.stats.overall.sessions:,} finished '
            f'sessions{period} · conversion rate per session '
            f'{_pct(report.overall.sessions.conversion_rate)}</p></header>')


def _summary(report: Report) -> str:
    items = "".join(f"<li>{text(line)}</li>" for line in report.summary)
    return f'<section id="summary"><h2>In short</h2><ul>{items}</ul></section>'


def _impact(report: Report) -> str:
    groups = report.ranked
    limit = max((abs(g.sessions.conversion_impact) for g in groups
                 if math.isfinite(g.sessions.conversion_impact)), default=0.0)
    limit = max(limit, max((abs(g.sessions.activity_impact) for g in groups
                            if math.isfinite(g.sessions.activity_impact)), default=0.0))
    rows = []
    for rank, group in enumerate(groups, 1):
        s = group.sessions
        name = text(group.label)
        css = "group" if group.enough else "group few"
        rows.append(
            f'<tr class="{css}" data-group="{name}" data-rank="{rank}" '
            f'data-cis="{s.conversion_impact!r}" data-ais="{s.activity_impact!r}">'
            f'<td>{rank}</td><td class="name">{name}</td>'
            f'<td>{svg.diverging_bar(s.conversion_impact, limit, "conversion impact")}</td>'
            f'<td class="cis">{_score(s.conversion_impact)}</td>'
            f'<td>{svg.diverging_bar(s.activity_impact, limit, "activity impact")}</td>'
            f'<td class="ais">{_score(s.activity_impact)}</td>'
            f'<td>{svg.share_bar(s.share_of_requests, "share of requests")}</td>'
            f'<td class="share">{_pct(s.share_of_requests)}</td>'
            f'<td>{s.sessions:,}</td><td>{_ms(group.requests.quantile(0.95))}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="10" class="note">No finished sessions yet.</td></tr>')
    return (
        '<section id="impact"><h2>Where slowness costs conversions</h2>'
        '<p class="explain">Pages ranked by <b>Conversion Impact Score</b>: the share of '
        'requests a page group serves, times how strongly a session\'s load time there '
        'goes with not buying (Spearman correlation). The more negative, the more '
        'conversions slowness there costs: make the first row faster first. The '
        '<b>Activity Impact Score</b> is the same with pages per session in place of '
        'buying. Grey rows have fewer sessions than the ranking needs.</p>'
        '<table class="ranking"><thead><tr><th>#</th><th class="name">page group</th>'
        '<th colspan="2">conversion impact</th><th colspan="2">activity impact</th>'
        '<th colspan="2">share of requests</th><th>sessions</th><th>p95</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></section>')


def _bucket_bounds(first: int, last: int) -> tuple[list[float], list[float]]:
    """Each shown bucket's span in seconds; the clamp buckets get a span of one bucket
    around their representative latency."""
    edges = bucket_edges()
    lows, highs = [], []
    for b in range(first, last + 1):
        lo, hi = float(edges[b]), float(edges[b + 1])
        rep = float(REPRESENTATIVE[b])
        lows.append(lo if lo > 0 else min(rep, LOWEST) / 1.1)
        highs.append(hi if math.isfinite(hi) else rep * 1.1)
    return lows, highs


def _curve_card(group: Group) -> str:
    curve = group.sessions.curve()
    sessions = curve.sessions
    filled = np.flatnonzero(sessions)
    name = text(group.label)
    optimal = curve.optimal_load_time
    if math.isfinite(optimal):
        bucket = int(np.searchsorted(curve.edges, optimal, side="right")) - 1
        few = ("" if curve.reliable[bucket] else ", though few sessions load that fast: "
               "read it as a direction, not a target")
        best = (f'<p class="optimal" data-optimal-ms="{optimal * 1e3:.0f}" '
                f'data-reliable="{"no" if few else "yes"}">Visitors convert best at about '
                f'<b>{_ms(optimal)}</b>{few}</p>')
    else:
        best = '<p class="optimal note">Too few sessions to place the best load time.</p>'
    if filled.size == 0:
        chart = svg.curve_chart([], [], [], [], [], [], [], math.nan, f"{group.label}")
    else:
        first, last = int(filled[0]), int(filled[-1])
        lows, highs = _bucket_bounds(first, last)
        part = slice(first, last + 1)
        low, high = stats.wilson_interval(curve.conversions[part], sessions[part])
        chart = svg.curve_chart(lows, highs, sessions[part].tolist(),
                                curve.rate[part].tolist(), low.tolist(), high.tolist(),
                                curve.reliable[part].tolist(), optimal,
                                f"conversion against load time, {group.label}")
    s = group.sessions
    return (f'<div class="card curve" data-group="{name}"><h3>{name}</h3>'
            f'<p class="note">{s.sessions:,} sessions, {_pct(s.conversion_rate)} converted'
            f'</p>{best}{chart}</div>')


def _curves(report: Report) -> str:
    cards = "".join(_curve_card(g) for g in (report.overall, *report.ranked))
    return ('<section id="curves"><h2>Conversion against load time</h2>'
            '<p class="explain">For each page group, finished sessions by their load time '
            'on that page (bars) and the share of them that bought (line, with its 95% '
            'interval shaded). Grey bars hold too few sessions to be read alone. The dashed '
            'line marks the load time at which visitors convert best. For all pages '
            'together the curve mixes speed with how deep a visit goes (deeper visits meet '
            'slower pages and buy more), so read the per-page curves to decide.</p>'
            f'<div class="cards">{cards}</div></section>')


def _whatif_rows(groups: Sequence[Group], revenue: bool) -> str:
    rows = []
    for group in groups:
        name = text(group.label)
        cells = []
        for p in group.projections:
            if revenue:
                cells.append(f'<td class="revenue">{_money(p.revenue_change)} '
                             f'{_bracket(_money(p.revenue_low), _money(p.revenue_high))}</td>')
            else:
                cells.append(f'<td class="change" data-delta="{p.delta_s * 1e3:g}" '
                             f'data-change="{p.change!r}">{_points(p.change)} '
                             f'{_bracket(_points(p.low), _points(p.high))}</td>')
        few = "" if group.enough else ' class="few"'
        rows.append(f'<tr data-group="{name}"{few}><td class="name">{name}</td>'
                    f'{"".join(cells)}</tr>')
    return "".join(rows)


def _whatif_card(group: Group, projections: Sequence[Projection]) -> str:
    name = text(group.label)
    chart = svg.whatif_chart([p.delta_s * 1e3 for p in projections],
                             [p.change for p in projections], [p.low for p in projections],
                             [p.high for p in projections], f"what-if, {group.label}")
    return f'<div class="card whatif" data-group="{name}"><h3>{name}</h3>{chart}</div>'


def _whatif(report: Report) -> str:
    groups = [g for g in (report.overall, *report.ranked) if g.projections]
    if not groups:
        return ('<section id="whatif"><h2>What if pages were faster or slower</h2>'
                '<p class="note">No page group has enough finished sessions for the model '
                'yet.</p></section>')
    deltas = [p.delta_s * 1e3 for p in groups[0].projections]
    head = "".join(f"<th>{d:+,.0f} ms</th>" for d in deltas)
    cards = "".join(_whatif_card(g, g.projections) for g in groups)
    return ('<section id="whatif"><h2>What if pages were faster or slower</h2>'
            '<p class="explain">The change of the session conversion rate, in percentage '
            'points, and of revenue, if load time on a page group moved by the given amount, '
            'with 95% intervals: a logistic model of conversion on load time fitted to the '
            'finished sessions. Revenue is over the sessions observed, at their average '
            'order value. Grey rows have fewer sessions than the ranking needs.</p>'
            '<h3>Conversion change</h3>'
            f'<table class="whatif conversion"><thead><tr><th class="name">page group</th>'
            f'{head}</tr></thead><tbody>{_whatif_rows(groups, False)}</tbody></table>'
            '<h3>Revenue change (EUR)</h3>'
            f'<table class="whatif revenue"><thead><tr><th class="name">page group</th>'
            f'{head}</tr></thead><tbody>{_whatif_rows(groups, True)}</tbody></table>'
            f'<div class="cards">{cards}</div></section>')


def _against(recent: str, organic: str) -> str:
    return f'{recent}<span class="note">organic {organic}</span>'


def _campaign_row(campaign: CampaignHealth, report: Report) -> str:
    recent, site = campaign.recent, campaign.site_baseline
    name = text(campaign.campaign)
    changes = report.timeline.get(campaign.campaign, ())
    strip = svg.timeline_strip(list(changes), changes[0][0] if changes else 0,
                               report.snapshot.taken_ns, f"state of {campaign.campaign}")
    since = time.strftime("%H:%M:%S", time.gmtime(campaign.first_seen_ns / 1e9))
    return (f'<tr data-campaign="{name}" data-state="{text(campaign.state)}">'
            f'<td class="name">{name}</td><td><span class="state {text(campaign.state)}">'
            f'{text(campaign.state.replace("_", " "))}</span></td>'
            f'<td class="why">{text(campaign.reason)}</td><td>{since}</td>'
            f'<td>{recent.requests:,}</td><td>{_against(_ms(recent.p95_s), _ms(site.p95_s))}</td>'
            f'<td>{_against(_pct(recent.error_rate), _pct(site.error_rate))}</td>'
            f'<td>{_against(_pct(recent.conversion_rate), _pct(site.conversion_rate))}</td>'
            f'<td class="name">{strip or "-"}</td></tr>')


def _campaigns(report: Report) -> str:
    if not report.campaigns:
        body = '<p class="note">No campaign traffic in this data.</p>'
    else:
        rows = "".join(_campaign_row(c, report) for c in report.campaigns)
        body = ('<table class="campaigns"><thead><tr><th class="name">campaign</th>'
                '<th>state</th><th class="name">why</th><th>first seen (UTC)</th>'
                '<th>recent requests</th><th>p95</th><th>errors</th><th>conversion</th>'
                '<th class="name">state over time</th></tr></thead>'
                f'<tbody>{rows}</tbody></table>')
    return ('<section id="campaigns"><h2>Campaigns</h2>'
            '<p class="explain">Each campaign\'s recent traffic against organic traffic (no '
            'campaign) on the pages it lands on. <b>Failing</b>: errors or a p95 far above '
            'organic; <b>degraded</b>: noticeably worse; <b>warming up</b>: too little '
            'recent traffic to judge. The strip shows the state since the campaign was '
            'first seen (green ok, amber degraded, red failing, grey warming up).</p>'
            + body + '</section>')


def _p_value(p: float) -> str:
    if not math.isfinite(p):
        return "-"
    return "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def _test_cells(result: TestResult, scale: float, unit: str, digits: int) -> str:
    low, high = interval(result)
    p = result.p_value
    css = ' class="signif"' if math.isfinite(p) and p < 0.05 else ""

    def show(value: float) -> str:
        return "-" if not math.isfinite(value) else f"{value * scale:+,.{digits}f}{unit}"

    return (f'<td{css}>{show(result.difference)} {_bracket(show(low), show(high))}</td>'
            f'<td{css}>{_p_value(p)}</td>')


def _variants_row(variants: Variants) -> str:
    result = variants.comparison
    flag = text(variants.flag) if variants.flag is not None else "-"
    return (f'<tr data-variant="{text(result.treatment)}"><td class="name">{flag}</td>'
            f'<td class="name">{text(result.treatment)} vs {text(result.control)}</td>'
            f'<td>{result.requests[1]:,} / {result.requests[0]:,}</td>'
            + _test_cells(result.conversion, 100, " pt", 2)
            + _test_cells(result.latency, 1e3, " ms", 1)
            + _test_cells(result.order_value, 1, " EUR", 2) + "</tr>")


def _ab(report: Report) -> str:
    if not report.variants:
        body = '<p class="note">No feature-flag variants in this data.</p>'
    else:
        rows = "".join(_variants_row(v) for v in report.variants)
        body = ('<table class="ab"><thead><tr><th class="name">flag</th>'
                '<th class="name">variant</th><th>requests</th><th>conversion</th><th>p</th>'
                '<th>latency</th><th>p</th><th>order value</th><th>p</th></tr></thead>'
                f'<tbody>{rows}</tbody></table>')
    return ('<section id="ab"><h2>A/B tests</h2>'
            '<p class="explain">Each variant against the control (the first by name): the '
            'difference with its 95% interval and the two-sided p-value. Bold: significant '
            'at 5%. Conversion is per order confirmation request (two-proportion z-test); '
            'latency and order value by Welch\'s t-test.</p>' + body + '</section>')


def _footer(report: Report) -> str:
    return (f'<footer class="note"><p>bizops-otel {text(__version__)} · native and pure '
            'twins compute the same numbers · every figure is from the finished sessions and '
            'requests of this data; nothing on this page was fetched from elsewhere.</p>'
            '</footer>')


def render(report: Report) -> str:
    """The whole page."""
    sections = (_header(report), _summary(report), _impact(report), _curves(report),
                _whatif(report), _campaigns(report), _ab(report), _footer(report))
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{text(report.title)}</title>{ERROR_HOOK}<style>{CSS}</style></head>'
            '<body>' + "".join(sections)
            + '<pre id="script-errors" hidden></pre>'
            '<script>document.body.setAttribute("data-rendered", "yes");</script>'
            '</body></html>\n')
