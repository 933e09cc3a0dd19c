#!/usr/bin/env python3
"""The dashboard's runs page with many runs, in a real headless Chromium (docs/benchmarks.md).

Writes N runs (config, summaries, tags; most finished) through a coordinator's HTTP API into a
temporary database, serves that database with `i3lab ui`, and opens the runs page K times in
one Chromium. For each load it reads the page's own marks: when the list was fetched and its
rows built (`i3lab:runs-rendered`, set by app.js), the largest contentful paint, the size and
time of the /api/v1/runs answer, and how many rows the page holds (virtual scrolling keeps it to
those in view). Then it times, in the page, sorting by a summary column, a search keystroke and a
jump to the middle of the list. The first load is reported apart (a cold cache); the others as
their median.

Needs Debian's chromium, chromium-driver and python3-selenium (scripts/setup --test-tools).

usage: /usr/bin/python3 bench/web/runs_page.py [--i3lab build/i3lab] [--runs 10000] [--loads 5] [--json]
"""
import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "web"))
import headless_chromium  # noqa: E402
import i3lab_server  # noqa: E402


def post_events(url, events):
    return i3lab_server.post(url, "/api/v1/events", {"events": events})


def write_runs(i3lab, folder, n):
    """N runs through the coordinator's API, 500 per request, as a sweep would leave them."""
    proc, url = i3lab_server.start(i3lab_server.coordinator_argv(i3lab, os.path.join(folder, "i3lab.db")),
                                   os.path.join(folder, "coordinator.err"))
    rng = random.Random(1)
    batch = []
    for i in range(n):
        uid = f"{i:032x}"
        lr = 10 ** rng.uniform(-4, -2)
        d_model = rng.choice([128, 256, 512])
        batch.append({"run": uid, "seq": 1, "type": "run_created", "project": "sweep", "name": f"trial-{i}",
                      "group": f"sweep-{i // 1000}", "tags": ["bench", rng.choice(["a", "b", "c"])], "notes": "",
                      "config": {"optim": {"lr": lr, "warmup": rng.choice([100, 500])}, "model": {"d_model": d_model},
                                 "seed": i}, "wall": 1000.0 + i})
        loss = 3.0 + abs(rng.gauss(0, 1)) + 1e-3 / lr
        batch.append({"run": uid, "seq": 2, "type": "metrics", "step": 1000, "wall": 2000.0 + i,
                      "values": {"train/loss": loss, "val/loss": loss + 0.1, "train/tokens_per_s": rng.uniform(1e4, 5e4)}})
        if i % 10:
            batch.append({"run": uid, "seq": 3, "type": "run_finished", "status": "finished", "wall": 3000.0 + i})
        if len(batch) >= 1500:
            post_events(url, batch)
            batch = []
    if batch:
        post_events(url, batch)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


LOAD_METRICS = """
const done = arguments[arguments.length - 1];
const mark = performance.getEntriesByName('i3lab:runs-rendered')[0];
const api = performance.getEntriesByType('resource').find((e) => e.name.includes('/api/v1/runs?'));
const result = {
  rendered_ms: mark.startTime,
  api_start_ms: api ? api.startTime : null,
  api_ms: api ? api.responseEnd - api.requestStart : null,
  api_bytes: api ? api.encodedBodySize : null,
  api_json_bytes: api ? api.decodedBodySize : null,
  rows_in_page: document.querySelectorAll('.vrow[data-run]').length,
  count_text: document.querySelector('.toolbar .muted').textContent,
};
let settled = false;
const finish = (lcp) => { if (!settled) { settled = true; result.lcp_ms = lcp; done(result); } };
new PerformanceObserver((list) => finish(list.getEntries().at(-1).startTime))
  .observe({ type: 'largest-contentful-paint', buffered: true });
setTimeout(() => finish(null), 2000);
"""

# Each interaction is timed synchronously in the page, layout included (reading offsetHeight).
INTERACTIONS = """
const body = document.querySelector('.vbody');
const time = (f) => { const t = performance.now(); f(); void document.body.offsetHeight; return performance.now() - t; };
const header = [...document.querySelectorAll('.vhead button')].find((b) => b.textContent.startsWith('val/loss'));
const search = document.querySelector('input[type=search]');
return {
  sort_ms: header ? time(() => header.click()) : null,
  scroll_ms: time(() => { body.scrollTop = body.scrollHeight / 2; body.dispatchEvent(new Event('scroll')); }),
  search_ms: time(() => { search.value = 'trial-99'; search.dispatchEvent(new Event('input')); }),
  rows_after_search: document.querySelectorAll('.vrow[data-run]').length,
};
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--i3lab", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "i3lab"))
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of lines of text")
    args = ap.parse_args()
    why_not = headless_chromium.missing()
    if why_not:
        sys.exit("runs_page.py: " + why_not)
    with tempfile.TemporaryDirectory(prefix="i3lab-bench-runs-") as folder:
        print(f"writing {args.runs} runs...", file=sys.stderr)
        write_runs(args.i3lab, folder, args.runs)
        ui, url = i3lab_server.start([args.i3lab, "ui", "--db", os.path.join(folder, "i3lab.db"), "--http", "127.0.0.1:0"],
                        os.path.join(folder, "ui.err"))
        browser = headless_chromium.Browser(folder)
        try:
            loads = []
            for k in range(args.loads):
                # The default columns and order each time: the saved layout is cleared on the origin.
                browser.driver.get(url + "/api/v1/info")
                browser.driver.execute_script("localStorage.clear()")
                browser.driver.get(url + "/")
                browser.wait_for("performance.getEntriesByName('i3lab:runs-rendered').length", timeout=120)
                load = browser.driver.execute_async_script(LOAD_METRICS)
                if k == 0:
                    load.update(browser.driver.execute_script(INTERACTIONS))
                loads.append(load)
                print(f"load {k + 1}: " + json.dumps(load), file=sys.stderr)
        finally:
            browser.close()
            ui.send_signal(signal.SIGTERM)
            ui.wait(60)
    warm = loads[1:] or loads
    report = {
        "runs": args.runs,
        "cold": loads[0],
        "warm_median": {k: statistics.median(x[k] for x in warm) for k in ("rendered_ms", "api_ms", "lcp_ms")
                        if all(x.get(k) is not None for x in warm)},
        "loads": len(loads),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        c, w = report["cold"], report["warm_median"]
        print(f"{args.runs} runs ({c['count_text']}); answer {c['api_bytes'] / 1e6:.1f} MB; {c['rows_in_page']} rows in the page")
        print(f"first load:  rows built {c['rendered_ms']:.0f} ms, largest paint {c['lcp_ms'] or 0:.0f} ms, API {c['api_ms']:.0f} ms")
        print(f"warm median: rows built {w.get('rendered_ms', 0):.0f} ms, largest paint {w.get('lcp_ms', 0):.0f} ms, "
              f"API {w.get('api_ms', 0):.0f} ms (of {len(warm)} loads)")
        print(f"sort by val/loss {c['sort_ms']:.0f} ms, jump to the middle {c['scroll_ms']:.0f} ms, "
              f"search keystroke {c['search_ms']:.0f} ms")


if __name__ == "__main__":
    main()
