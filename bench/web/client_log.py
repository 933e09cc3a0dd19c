#!/usr/bin/env python3
"""What the Python client's `log()` costs the training loop (docs/benchmarks.md).

Starts `i3lab coordinator --http` on a temporary database and, in this process, times with
clients/python/i3lab_client.py:
- `import i3lab_client` and `init()`;
- N calls of `log({5 scalars})` without a step, each timed alone (median, p99, max) while the
  background thread sends them;
- `finish()`, which waits until the server has committed every event; then the run's summary
  on the server is read back to check that all N steps arrived;
- the same N calls with the server away (a closed port), where events wait in the queue, and in
  offline mode, where each call appends a line to a local file;
- for scale, a bare Python call that takes the same dict.

usage: /usr/bin/python3 bench/web/client_log.py [--i3lab build/i3lab] [--calls 50000] [--json]
"""
import argparse
import importlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "web"))
import i3lab_server  # noqa: E402


def timed_calls(f, n):
    """Calls f(i) n times; returns each call's time in microseconds."""
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        f(i)
        out.append((clock() - t) / 1000)
    return out


def summary(times):
    times = sorted(times)
    return {"median_us": round(statistics.median(times), 2), "p99_us": round(times[int(len(times) * 0.99)], 2),
            "max_us": round(times[-1], 1), "calls_per_s": round(len(times) / (sum(times) / 1e6))}


def values(i):
    return {"train/loss": 1.0 / (i + 1), "train/lr": 3e-4, "train/grad_norm": 0.5 + i % 7, "train/tokens_per_s": 25000.0,
            "train/step_ms": 12.5}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--i3lab", default=os.path.join(HERE, "..", "..", "build", "i3lab"))
    ap.add_argument("--calls", type=int, default=50000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.calls
    report = {"calls": n, "values_per_call": len(values(0))}
    with tempfile.TemporaryDirectory(prefix="i3lab-bench-client-") as folder:
        proc, url = i3lab_server.start(i3lab_server.coordinator_argv(args.i3lab, os.path.join(folder, "i3lab.db")),
                                       os.path.join(folder, "coordinator.err"))
        try:
            t = time.perf_counter()
            wandb = importlib.import_module("i3lab_client")
            report["import_ms"] = round((time.perf_counter() - t) * 1000, 1)

            def bare(d):
                return d
            report["bare_call"] = summary(timed_calls(lambda i: bare(values(i)), n))

            # Online, server up.
            t = time.perf_counter()
            run = wandb.init(project="bench", name="log-cost", url=url, config={"lr": 3e-4})
            report["init_ms"] = round((time.perf_counter() - t) * 1000, 1)
            report["online"] = summary(timed_calls(lambda i: wandb.log(values(i)), n))
            t = time.perf_counter()
            wandb.finish()
            report["online"]["finish_s"] = round(time.perf_counter() - t, 2)
            with urllib.request.urlopen(url + "/api/v1/runs?" + urllib.parse.urlencode({"where": f"uid={run.id}"})) as res:
                stored = json.loads(res.read())["runs"][0]["summary"]["train/loss"]
            report["online"]["points_stored"] = stored["count"]
            if stored["count"] != n:
                sys.exit(f"client_log.py: the server holds {stored['count']} of {n} points")

            # Online, server away: every event waits in the queue (bounded at 100,000 events).
            away = f"http://127.0.0.1:{i3lab_server.free_port()}"
            wandb.init(project="bench", name="log-cost-away", url=away, dir=folder)  # unsent events go there
            report["server_away"] = summary(timed_calls(lambda i: wandb.log(values(i)), min(n, 90000)))
            os.environ["I3LAB_FINISH_TIMEOUT"] = "0"
            wandb.finish()

            # Offline: a line of JSON per call in a local file.
            wandb.init(project="bench", name="log-cost-offline", mode="offline", dir=folder)
            report["offline"] = summary(timed_calls(lambda i: wandb.log(values(i)), n))
            wandb.finish()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{n} log() calls of {report['values_per_call']} scalars; import {report['import_ms']} ms, init {report['init_ms']} ms")
    for name in ("bare_call", "online", "server_away", "offline"):
        r = report[name]
        extra = f", finish {r['finish_s']} s, {r['points_stored']} points stored" if name == "online" else ""
        print(f"{name:12s} median {r['median_us']} us, p99 {r['p99_us']} us, max {r['max_us']} us, "
              f"{r['calls_per_s']} calls/s{extra}")


if __name__ == "__main__":
    main()
