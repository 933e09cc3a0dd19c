#!/usr/bin/env python3
"""Data-parallel scaling of `i3lab train` on this machine (docs/distributed.md, docs/benchmarks.md).

Trains the same model on the demo corpus in five ways, one after the other, and reads each
run's own metrics from its tracker database:

  1 rank,  batch B,  1 thread        the per-rank baseline
  1 rank,  batch 2B, 1 thread
  1 rank,  batch 2B, default threads (every core for one process)
  2 ranks, batch B each, 1 thread each, buckets sent during backward (overlap)
  2 ranks, batch B each, 1 thread each, buckets sent after backward (no overlap)

Reports per way the median train/tokens_per_sec over the log points after the first, and for
2 ranks the median communication per step (train/comm_ms: the union of the buckets'
send-to-done intervals) and the part left waiting after backward (train/comm_exposed_ms).
Scaling efficiency = tokens/s of 2 ranks / (2 × tokens/s of the per-rank baseline).

usage: bench/dp_scaling.py [--preset i3-demo] [--batch 8] [--steps 60] [--json]
Needs the demo data (scripts/setup --with-data) and build/i3lab.
"""
import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
I3LAB = os.path.join(ROOT, "build", "i3lab")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def series(db, key):
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT m.step, m.value FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
        "WHERE k.name = ? ORDER BY m.step", (key,)).fetchall()
    con.close()
    return [v for _, v in rows]


def run(way, args, work):
    db = os.path.join(work, way["name"].replace(" ", "_") + ".db")
    config = {
        "project": "dp-scaling",
        "model": {"preset": args.preset},
        "data": {"vocab": os.path.join(ROOT, "data/demo/vocab.json"),
                 "sources": [{"path": os.path.join(ROOT, "data/demo/sentences.txt"), "separator": "\n"},
                             {"path": os.path.join(ROOT, "data/demo/brown.txt"), "separator": "\n\n"}],
                 "batch_size": way["batch"], "cache_dir": os.path.join(work, "cache")},
        "train": {"max_iters": args.steps, "device": "cpu"},
        "logging": {"log_interval": 10, "eval_interval": 0, "eval_batches": 1, "sample_tokens": 0},
        "checkpoint": {"interval": 0},
        "distributed": {"overlap": way.get("overlap", True)},
    }
    path = os.path.join(work, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    port = free_port()
    procs = []
    for rank in range(way["ranks"]):
        env = dict(os.environ)
        env.pop("I3LAB_THREADS", None)
        if way["threads"]:
            env["I3LAB_THREADS"] = way["threads"]
        if way["ranks"] > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(way["ranks"]), LOCAL_RANK=str(rank),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([I3LAB, "train", path, "--db", db], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(db + f".rank{rank}.err", "w")))
    for rank, p in enumerate(procs):
        if p.wait() != 0:
            sys.exit(f"{way['name']}: rank {rank} failed; see {db}.rank{rank}.err")
    out = {"way": way["name"], "ranks": way["ranks"], "batch_per_rank": way["batch"],
           "threads_per_rank": way["threads"] or "default",
           "tokens_per_sec": statistics.median(series(db, "train/tokens_per_sec")[1:])}
    if way["ranks"] > 1:
        out["comm_ms"] = statistics.median(series(db, "train/comm_ms")[1:])
        out["comm_exposed_ms"] = statistics.median(series(db, "train/comm_exposed_ms")[1:])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="i3-demo")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    b = args.batch
    ways = [
        {"name": "1 rank, batch B, 1 thread", "ranks": 1, "batch": b, "threads": "1,1"},
        {"name": "1 rank, batch 2B, 1 thread", "ranks": 1, "batch": 2 * b, "threads": "1,1"},
        {"name": "1 rank, batch 2B, default threads", "ranks": 1, "batch": 2 * b, "threads": None},
        {"name": "2 ranks, batch B, overlap", "ranks": 2, "batch": b, "threads": "1,1", "overlap": True},
        {"name": "2 ranks, batch B, no overlap", "ranks": 2, "batch": b, "threads": "1,1", "overlap": False},
    ]
    with tempfile.TemporaryDirectory(prefix="i3lab-dp-") as work:
        results = [run(w, args, work) for w in ways]
    base = results[0]["tokens_per_sec"]
    for r in results:
        if r["ranks"] > 1:
            r["efficiency"] = r["tokens_per_sec"] / (r["ranks"] * base)
            r["hidden"] = max(0.0, 1 - r["comm_exposed_ms"] / r["comm_ms"]) if r["comm_ms"] > 0 else 0.0
    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.preset}, B = {b} windows per rank, {args.steps} steps, {os.cpu_count()} cores")
    print(f"{'way':36}{'tokens/s':>10}{'comm ms/step':>14}{'exposed ms':>12}{'hidden':>8}{'efficiency':>12}")
    for r in results:
        extra = (f"{r['comm_ms']:14.1f}{r['comm_exposed_ms']:12.1f}{100 * r['hidden']:7.0f}%{r['efficiency']:12.2f}"
                 if r["ranks"] > 1 else "")
        print(f"{r['way']:36}{r['tokens_per_sec']:10.0f}{extra}")


if __name__ == "__main__":
    main()
