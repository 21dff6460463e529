"""The report's interactive panel: pick a variable, region, score and lead, and the plot and the
numbers at that lead follow, in the page itself (no server: ``index.html`` opens from disk).

The scores are embedded as JSON (a few numbers per variable, region and lead) and drawn as SVG
by a few lines of plain JavaScript: no library to ship or fetch, since the page must open
offline. Every figure is also a PNG below it.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from swarmcast.ops.verification.report import lead_hours
from swarmcast.ops.verification.report_breakdowns import LEVEL, interval

SCORES = {
    "crps": ("fair CRPS", "crps_per_init", False, ("persistence_crps", "climatology_crps")),
    "rmse": ("ensemble-mean RMSE", "mse_per_init", True, ("persistence_rmse", "climatology_rmse")),
    "spread": ("spread", "variance_per_init", True, ()),
}


def _clean(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in np.asarray(values, dtype=float)]


def page_data(scores: xr.Dataset) -> dict:
    """What the panel draws: ``{"leads": hours, "units": {variable: units}, "series":
    {variable: {region: {score: {"label", "values", "low", "high", "baselines": {name: values}}}}}}``."""
    series: dict = {}
    for v in scores["variable"].values:
        for r in scores["region"].values:
            s = scores.sel(variable=v, region=r)
            entry = {}
            for key, (label, per_init, root, baselines) in SCORES.items():
                low, high = interval(s[per_init].values, root=root)
                entry[key] = {
                    "label": label,
                    "values": _clean(s[key].values),
                    "low": _clean(low),
                    "high": _clean(high),
                    "baselines": {b.split("_")[0]: _clean(s[b].values) for b in baselines},
                }
            series.setdefault(str(v), {})[str(r)] = entry
    units = {str(v): str(u) for v, u in zip(scores["variable"].values, scores["units"].values, strict=True)}
    return {"leads": [float(h) for h in lead_hours(scores["lead_time"])], "units": units, "series": series}


_SCRIPT = """
const D = JSON.parse(document.getElementById('swarmcast-scores').textContent);
const $ = (id) => document.getElementById(id);
function fill(sel, items) { sel.innerHTML = items.map((x) => `<option>${x}</option>`).join(''); }
fill($('pick-variable'), Object.keys(D.series));
fill($('pick-region'), Object.keys(D.series[Object.keys(D.series)[0]]));
fill($('pick-score'), ['crps', 'rmse', 'spread']);
fill($('pick-lead'), D.leads.map((h) => h + ' h'));
$('pick-lead').selectedIndex = D.leads.length - 1;
const W = 640, H = 300, P = 48;
function draw() {
  const s = D.series[$('pick-variable').value][$('pick-region').value][$('pick-score').value];
  const lines = {ensemble: s.values, ...s.baselines};
  const all = [].concat(...Object.values(lines), s.low, s.high).filter((v) => v !== null);
  const top = Math.max(...all, 0) * 1.05 || 1, n = D.leads.length;
  const x = (i) => P + (n > 1 ? i * (W - 2 * P) / (n - 1) : 0), y = (v) => H - P - v * (H - 2 * P) / top;
  const path = (vals) => vals.map((v, i) => v === null ? '' : `${i ? 'L' : 'M'}${x(i)},${y(v)}`).join('');
  const band = s.low.map((v, i) => `${i ? 'L' : 'M'}${x(i)},${y(v ?? 0)}`).join('') +
    s.high.map((v, i) => `L${x(n - 1 - i)},${y(s.high[n - 1 - i] ?? 0)}`).join('') + 'Z';
  const colours = {ensemble: '#1f77b4', persistence: '#ff7f0e', climatology: '#2ca02c'};
  const k = $('pick-lead').selectedIndex;
  let svg = `<path class="band" d="${band}" fill="#1f77b4" opacity="0.2"/>`;
  for (const [name, vals] of Object.entries(lines)) {
    svg += `<path class="line" data-name="${name}" d="${path(vals)}" fill="none" stroke="${colours[name]}"/>`;
  }
  svg += `<line x1="${x(k)}" x2="${x(k)}" y1="${P}" y2="${H - P}" stroke="#888" stroke-dasharray="4"/>`;
  svg += `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">lead time [h]</text>`;
  const units = D.units[$('pick-variable').value];
  svg += `<text x="12" y="${P - 12}">${s.label} [${units}], 0 to ${top.toPrecision(3)}</text>`;
  $('score-plot').innerHTML = svg;
  const num = (v) => v === null ? 'n/a' : v.toPrecision(4);
  const at = Object.entries(lines).map(([name, vals]) => `${name} ${num(vals[k])}`);
  const span = `interval ${num(s.low[k])} to ${num(s.high[k])}`;
  $('score-at-lead').textContent = `at ${D.leads[k]} h: ${at.join(', ')}; ${span}`;
}
for (const id of ['pick-variable', 'pick-region', 'pick-score', 'pick-lead']) $(id).addEventListener('change', draw);
draw();
"""


def interactive_section(scores: xr.Dataset) -> str:
    """HTML of the panel: the controls, an SVG plot, a line of numbers at the chosen lead, and
    the embedded scores (``page_data``) it draws from."""
    data = json.dumps(page_data(scores)).replace("</", "<\\/")  # never ends the script element early
    controls = "".join(
        f"<label>{name} <select id='pick-{name}'></select></label> " for name in ("variable", "region", "score", "lead")
    )
    return (
        "<h2>Explore the scores</h2>"
        f"<p>Shaded: {LEVEL:.0%} interval over the {scores.sizes['init_time']} init dates; "
        "orange: persistence; green: climatology.</p>"
        f"<p>{controls}</p>"
        "<svg id='score-plot' width='640' height='300' style='border:1px solid #ddd'></svg>"
        "<p id='score-at-lead'></p>"
        f"<script type='application/json' id='swarmcast-scores'>{data}</script>"
        f"<script>{_SCRIPT}</script>"
    )


__all__ = ["interactive_section", "page_data"]
