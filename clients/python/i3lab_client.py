"""Log training runs to i3lab the way Weights & Biases' client does.

    import i3lab_client as wandb

    wandb.init(project="i3", name="baseline", config={"lr": 3e-4}, tags=["demo"])
    wandb.config.update({"batch_size": 16})
    wandb.watch(model, log="all", log_freq=100)
    for step in range(1000):
        ...
        wandb.log({"train/loss": loss})          # no step: the next one, as W&B does
    wandb.finish()

The server is `init(url=...)` or $I3LAB_URL (default http://127.0.0.1:8080), a coordinator
started with `--http`; $I3LAB_TOKEN (or `init(token=...)`) is sent when the server needs one.
Standard library only; torch is used when it is importable (watch, tensors in log).

Nothing blocks the training loop on the network: each call turns into tracker events
(docs/tracker.md) in a bounded queue that a background thread sends in batches, retrying with
backoff while the server is away (events carry per-run sequence numbers, so a batch sent twice
is applied once). Only a full queue (100,000 events) makes `log` wait. `finish()` waits up to
`I3LAB_FINISH_TIMEOUT` seconds (default 120) for the queue to drain; what the server has not
taken by then is saved in DIR/unsent-run-ID/ (DIR: `init(dir=...)`, default ./i3lab), in the
offline form, for `i3lab sync`.

In a job of an i3lab sweep (W&B's `program` form, docs/sweeps.md) init() takes the trial's
parameters from $I3LAB_SWEEP_PARAMS into config, as wandb.config holds a W&B sweep's, and
its group and name from $I3LAB_RUN_GROUP and $I3LAB_RUN_NAME; the events name the job
($I3LAB_JOB_ID), so the coordinator watches the run's metrics for the sweep.

mode="offline" writes the events to DIR/offline-run-ID/events.jsonl (and artifact files
beside them) instead; `i3lab sync --from THAT_FOLDER --to i3lab.db` stores them later.
"""

import atexit
import hashlib
import json
import math
import os
import queue
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

__all__ = ["init", "log", "finish", "watch", "define_metric", "log_artifact", "use_artifact",
           "Table", "Histogram", "Artifact", "Run", "run", "config", "summary"]

run = None
config = None
summary = None

_QUEUE_EVENTS = 100000
_BATCH_EVENTS = 2000
_CHUNK_BYTES = 4 << 20
_HIST_BINS = 64
_MAX_ANSWER_BYTES = 16 << 20


def _now():
    return time.time()


def _scalar(v):
    """v as a Python number (a tensor's or numpy value's through .item(), read once), or None."""
    if type(v) is float or type(v) is int:  # the common case first: log() runs every step
        return v
    if hasattr(v, "item") and callable(v.item):
        try:
            v = v.item()
        except (ValueError, RuntimeError):
            return None
    return v if isinstance(v, (int, float)) else None  # bool is an int


def _number(v):
    """A metric value as the events' JSON form takes it, or None if it is not a number."""
    v = _scalar(v)
    if v is None:
        return None
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _plain(v):
    """A config value or table cell as JSON (NaN and infinities as the strings "nan", "inf",
    "-inf", which JSON cannot hold)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return _number(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if hasattr(v, "item") and callable(v.item):
        try:
            return _plain(v.item())
        except (ValueError, RuntimeError):
            pass
    return str(v)


class Config(dict):
    """wandb.config: a dict with attribute access; changes reach the run."""

    def __init__(self, on_change):
        super().__init__()
        object.__setattr__(self, "_on_change", on_change)

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __setitem__(self, key, value):
        super().__setitem__(key, _plain(value))
        self._on_change()

    def update(self, other=None, allow_val_change=True, **kwargs):
        for k, v in dict(other or {}, **kwargs).items():
            super().__setitem__(str(k), _plain(v))
        self._on_change()

    def setdefaults(self, d):
        for k, v in d.items():
            if k not in self:
                super().__setitem__(k, _plain(v))
        self._on_change()


class Summary(dict):
    """wandb.run.summary: the newest value of each key logged. Setting a key logs it as a
    metric at the current step (i3lab keeps summaries from metrics)."""

    def __init__(self, run_):
        super().__init__()
        object.__setattr__(self, "_run", run_)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._run._log_now({key: value})

    def update(self, other=None, **kwargs):
        for k, v in dict(other or {}, **kwargs).items():
            self[k] = v


class Table:
    """wandb.Table(columns=[...], data=[[...], ...]); add_data(*row)."""

    def __init__(self, columns=None, data=None, rows=None, dataframe=None):
        if dataframe is not None:
            columns = list(dataframe.columns)
            data = dataframe.values.tolist()
        self.columns = [str(c) for c in (columns or [])]
        self.data = [list(r) for r in (data or rows or [])]
        for r in self.data:
            self._check(r)

    def _check(self, row):
        if len(row) != len(self.columns):
            raise ValueError(f"Table row has {len(row)} values for {len(self.columns)} columns")

    def add_data(self, *row):
        self._check(row)
        self.data.append(list(row))


class Histogram:
    """wandb.Histogram(sequence, num_bins=64) or Histogram(np_histogram=(counts, edges))."""

    def __init__(self, sequence=None, np_histogram=None, num_bins=_HIST_BINS):
        if np_histogram is not None:
            counts, edges = np_histogram
            self.counts = [int(c) for c in counts]
            self.lo, self.hi = float(edges[0]), float(edges[-1])
            return
        if hasattr(sequence, "detach"):
            t = sequence.detach().float().flatten().cpu()
            t = t[t.isfinite()]
            if t.numel() == 0:
                self.lo = self.hi = 0.0
                self.counts = []
                return
            self.lo, self.hi = float(t.min()), float(t.max())
            if self.hi <= self.lo:
                self.counts = [int(t.numel())]
                return
            import torch
            self.counts = [int(c) for c in torch.histc(t, bins=num_bins, min=self.lo, max=self.hi).tolist()]
            return
        if hasattr(sequence, "__array__"):  # numpy: counted by numpy, not value by value
            import numpy
            a = numpy.asarray(sequence, dtype=numpy.float64).ravel()
            a = a[numpy.isfinite(a)]
            if a.size == 0 or a.min() >= a.max():
                self.lo = self.hi = float(a.min()) if a.size else 0.0
                self.counts = [int(a.size)] if a.size else []
                return
            counts, edges = numpy.histogram(a, bins=num_bins)
            self.counts = [int(c) for c in counts]
            self.lo, self.hi = float(edges[0]), float(edges[-1])
            return
        values = []
        for v in (sequence if sequence is not None else []):  # a list, any iterable
            try:
                v = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                values.append(v)
        if not values:
            self.lo = self.hi = 0.0
            self.counts = []
            return
        self.lo, self.hi = min(values), max(values)
        if self.hi <= self.lo:
            self.counts = [len(values)]
            return
        self.counts = [0] * num_bins
        width = self.hi / num_bins - self.lo / num_bins  # hi - lo may overflow (1e308 - -1e308)
        for v in values:
            self.counts[min(num_bins - 1, int(v / width - self.lo / width))] += 1


class Artifact:
    """wandb.Artifact(name, type, metadata=...); add_file, add_dir; then log_artifact."""

    def __init__(self, name, type, description=None, metadata=None):
        self.name, self.type = name, type
        self.metadata = dict(metadata or {})
        if description:
            self.metadata.setdefault("description", description)
        self._files = {}  # path in the artifact → local file

    def add_file(self, local_path, name=None):
        if not os.path.isfile(local_path):
            raise ValueError(f"Artifact.add_file: {local_path} is not a file")
        self._files[name or os.path.basename(local_path)] = local_path

    def add_dir(self, local_path, name=None):
        if not os.path.isdir(local_path):
            raise ValueError(f"Artifact.add_dir: {local_path} is not a folder")
        for root, _, files in os.walk(local_path):
            for f in files:
                full = os.path.join(root, f)
                if not os.path.isfile(full):  # a FIFO would block hashing; a dangling link has no bytes
                    continue
                rel = os.path.relpath(full, local_path).replace(os.sep, "/")
                self._files[(name.rstrip("/") + "/" + rel) if name else rel] = full


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _HttpSender:
    """Sends events (and artifact files first) to the server from a background thread."""

    def __init__(self, url, token, fallback_folder):
        self.url = url.rstrip("/")
        self.token = token
        self.queue = queue.Queue(maxsize=_QUEUE_EVENTS)
        self.failure = None
        self.fallback_folder = fallback_folder  # where events go that finish() gives up sending
        self.fallback = None
        self.fallback_closed = False
        self.fallback_lock = threading.Lock()
        self.saved = 0
        self.in_flight = []
        self.warned = False
        self.thread = threading.Thread(target=self._loop, name="i3lab-sender", daemon=True)
        self.stopping = False
        self.thread.start()

    def _request(self, method, path, body, content_type, timeout=30):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers={"Content-Type": content_type})
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=timeout) as res:
            answer = json.loads(res.read(_MAX_ANSWER_BYTES) or b"null")
        if not isinstance(answer, dict):
            raise ValueError(f"{self.url}{path} answered {type(answer).__name__}, not a JSON object")
        return answer

    def put(self, item):
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            if not self.warned:
                print("i3lab: the event queue is full (server unreachable?); log() waits", file=sys.stderr)
                self.warned = True
            self.queue.put(item)

    def _upload(self, path, sha, size):
        """Sends a file in chunks, each at the offset the server holds (after a restart of
        either side, it may hold a part already, or none)."""
        offset = 0
        with open(path, "rb") as f:
            while True:
                f.seek(offset)
                chunk = f.read(_CHUNK_BYTES)
                took = True
                try:
                    answer = self._request("PUT", f"/api/v1/files/{sha}?size={size}&offset={offset}", chunk,
                                           "application/octet-stream")
                except urllib.error.HTTPError as e:
                    if e.code != 409:  # 409: a chunk at another offset than the server's
                        raise
                    answer, took = json.loads(e.read(_MAX_ANSWER_BYTES) or b"{}"), False
                if not isinstance(answer, dict):
                    raise ValueError(f"upload of {path}: the server answered {type(answer).__name__}")
                if answer.get("done"):
                    return
                # The server holds more than before (or, after a 409, names what it holds).
                have = answer.get("have")
                if not isinstance(have, int) or not 0 <= have <= size or (took and have <= offset):
                    raise RuntimeError(f"upload of {path}: the server holds {have!r} of {size} bytes after a chunk at {offset}")
                offset = have

    def _send(self, batch):
        """Sends one batch until it is accepted; only a refusal (400) is given up on."""
        delay = 0.25
        while True:
            try:
                for item in batch:
                    for path, sha, size in item.get("_files", ()):
                        self._upload(path, sha, size)
                events = [{k: v for k, v in item.items() if k != "_files"} for item in batch]
                body = {"events": events}
                if os.environ.get("I3LAB_JOB_ID", "").isdigit():
                    body["job"] = int(os.environ["I3LAB_JOB_ID"])  # this run is the job's (a sweep's trial)
                answer = self._request("POST", "/api/v1/events", json.dumps(body, allow_nan=False).encode(), "application/json")
                for e in answer.get("errors", []):
                    print(f"i3lab: the server refused an event: {e.get('error')}", file=sys.stderr)
                return
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:300]
                if e.code in (400, 401, 403, 404, 405, 413, 415):
                    print(f"i3lab: {self.url} refused {len(batch)} events (HTTP {e.code}): {detail}", file=sys.stderr)
                    self.failure = f"HTTP {e.code}: {detail}"
                    return
            except (OSError, ValueError):
                pass  # away or restarting: try again
            if self.stopping and time.monotonic() > self.deadline:
                self._save(batch)
                return
            time.sleep(delay)
            delay = min(delay * 2, 10)

    def _save(self, items):
        """Keeps events the server did not take in the fallback folder, as offline mode writes
        them, for `i3lab sync` (duplicates are harmless: the store skips a seq it has)."""
        with self.fallback_lock:
            if self.fallback_closed:  # close() saved the batch in flight already
                return
            if self.fallback is None:
                self.fallback = _OfflineWriter(self.fallback_folder)
            self.fallback.put_many(items)
            self.saved += len(items)

    def _loop(self):
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _BATCH_EVENTS:
                try:
                    item = self.queue.get(timeout=0.05 if len(batch) < 50 else 0)
                except queue.Empty:
                    break
                if item is None:
                    self._send_in_flight(batch)
                    return
                batch.append(item)
            self._send_in_flight(batch)

    def _send_in_flight(self, batch):
        self.in_flight = batch
        try:
            self._send(batch)
        except Exception as e:  # a server answering nonsense, a file gone: keep the batch, go on
            print(f"i3lab: cannot send {len(batch)} events to {self.url} ({e}); they are kept for i3lab sync",
                  file=sys.stderr)
            self._save(batch)
        self.in_flight = []

    def close(self, timeout):
        self.stopping = True
        self.deadline = time.monotonic() + timeout
        try:
            self.queue.put(None, timeout=timeout + 5)
        except queue.Full:
            pass  # the sender is stuck in a request: what is queued is saved below
        self.thread.join(timeout + 5)
        if self.thread.is_alive():
            # Stuck in a request: what is queued, and the batch in flight, are saved from here.
            rest = list(self.in_flight)
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    rest.append(item)
            self._save(rest)
        if self.saved:
            print(f"i3lab: {self.url} did not take {self.saved} events in {timeout} s; they are saved in "
                  f"{self.fallback_folder}. Store them with: i3lab sync --from {self.fallback_folder} --to "
                  f"THE_SERVER'S_DATABASE", file=sys.stderr)
            with self.fallback_lock:
                self.fallback_closed = True
                self.fallback.close(0, quiet=True)
        if self.failure:
            print(f"i3lab: {self.failure}", file=sys.stderr)


class _OfflineWriter:
    """Writes events to DIR/events.jsonl and artifact files to DIR/files/SHA256."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(os.path.join(folder, "files"), exist_ok=True)
        self.out = open(os.path.join(folder, "events.jsonl"), "a", encoding="utf-8")
        self.lock = threading.Lock()

    def put(self, item):
        self.put_many((item,))

    def put_many(self, items):
        """Writes events (and copies their files) under one lock, flushed once."""
        with self.lock:
            for item in items:
                for path, sha, _ in item.get("_files", ()):
                    target = os.path.join(self.folder, "files", sha)
                    if not os.path.exists(target):
                        shutil.copyfile(path, target + ".tmp")
                        os.replace(target + ".tmp", target)
                event = {k: v for k, v in item.items() if k != "_files"}
                self.out.write(json.dumps(event, allow_nan=False) + "\n")
            self.out.flush()

    def close(self, timeout, quiet=False):
        with self.lock:
            self.out.close()
        if not quiet:
            print(f"i3lab: offline run saved in {self.folder}; store it with: i3lab sync --from {self.folder} --to i3lab.db",
                  file=sys.stderr)


class Run:
    """What init() returns (also wandb.run): id, name, project, config, summary, log, finish."""

    def __init__(self, project, name, config_, tags, notes, group, run_id, resume, mode, url, token, dir_):
        self.id = run_id or uuid.uuid4().hex
        self.project = project or os.environ.get("I3LAB_PROJECT") or os.environ.get("WANDB_PROJECT") or "default"
        self.name = name or os.environ.get("I3LAB_RUN_NAME") or f"run-{self.id[:8]}"
        self.tags = list(tags or [])
        self.notes = notes or ""
        self.group = group or os.environ.get("I3LAB_RUN_GROUP") or ""
        self.mode = mode
        self.step = 0          # the next step log() uses without one
        self._seq = 0
        self._pending = {}     # log(commit=False) values for the current step
        self._goals = {}
        self._finished = False
        self._lock = threading.Lock()
        self.config = Config(self._config_changed)
        self.config.update(config_ or {})
        if os.environ.get("I3LAB_SWEEP_PARAMS"):  # a sweep's trial: its parameters win, as in W&B
            self.config.update(json.loads(os.environ["I3LAB_SWEEP_PARAMS"]))
        self.summary = Summary(self)
        if mode == "offline":
            self._sink = _OfflineWriter(os.path.abspath(os.path.join(dir_ or "i3lab", f"offline-run-{self.id}")))
        else:
            self._sink = _HttpSender(url, token, os.path.abspath(os.path.join(dir_ or "i3lab", f"unsent-run-{self.id}")))
        self.url = None if mode == "offline" else url.rstrip("/")
        if resume:
            # The run's earlier events hold sequence numbers 1, 2, …: go on above them (gaps are
            # allowed), with a base no earlier session can have reached (fewer than one event
            # per microsecond), and from the step after the newest the server has.
            self._seq = time.time_ns() // 1000
            self.step = self._next_step(url, token) if mode == "online" else 0
        self._emit("run_created", project=self.project, name=self.name, group=self.group, tags=self.tags,
                   notes=self.notes, config=dict(self.config), wall=_now())  # applied once: a duplicate on resume
        if resume:
            self._emit("run_resumed", from_step=-1, wall=_now())
        self._watch = None
        self._last_heartbeat = time.monotonic()

    def _next_step(self, url, token):
        """The step after the newest this run logged on the server (0 if it has none yet)."""
        req = urllib.request.Request(f"{url.rstrip('/')}/api/v1/runs?" + urllib.parse.urlencode({"where": f"uid={self.id}"}))
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                runs = json.loads(res.read())["runs"]
        except (OSError, ValueError, KeyError) as e:
            print(f"i3lab: cannot read run {self.id} from {url} to resume it ({e}); steps start at 0", file=sys.stderr)
            return 0
        steps = [s.get("last_step", -1) for r in runs for s in r.get("summary", {}).values()]
        return max(steps, default=-1) + 1

    # --- events --------------------------------------------------------------------------------

    def _emit(self, type_, _files=(), **fields):
        with self._lock:
            self._seq += 1
            event = {"run": self.id, "seq": self._seq, "type": type_, **fields}
            if _files:
                event["_files"] = list(_files)
            self._sink.put(event)

    def _config_changed(self):
        if getattr(self, "_seq", 0):
            self._emit("config", config=dict(self.config))

    # --- logging -------------------------------------------------------------------------------

    def log(self, data, step=None, commit=True):
        """Logs `data` at `step` (default: the current step, then the next). commit=False
        gathers values for one step over several calls. A step below the current one is
        ignored with a warning, as W&B does."""
        if self._finished:
            raise RuntimeError("i3lab: log() after finish()")
        if not isinstance(data, dict):
            raise TypeError("log() takes a dict of values")
        if step is not None:
            step = int(step)
            if step < self.step:
                print(f"i3lab: step {step} is below the current step {self.step}; these values are ignored", file=sys.stderr)
                return
            if step > self.step:
                self._commit()
                self.step = step
        self._pending.update(data)
        if commit:
            self._commit()
        if self._watch:
            self._watch.after_log(self)
        if time.monotonic() - self._last_heartbeat > 10:
            self._last_heartbeat = time.monotonic()
            self._emit("heartbeat", wall=_now())

    def _log_now(self, data):
        """Values set in the summary: logged at the last committed step."""
        values = {str(k): n for k, n in ((k, _number(v)) for k, v in data.items()) if n is not None}
        if values:
            self._emit("metrics", step=max(self.step - 1, 0), wall=_now(), values=values)

    def _commit(self):
        """Sends what is gathered for the current step, and moves to the next step."""
        if not self._pending:
            return
        step = self.step
        values = {}
        for key, v in self._pending.items():
            key = str(key)
            if isinstance(v, Table):
                self._emit("table", name=key, step=step, columns=v.columns, rows=[[_plain(x) for x in r] for r in v.data])
            elif isinstance(v, Histogram):
                self._emit("histogram", key=key, step=step, lo=v.lo, hi=v.hi, counts=v.counts)
            elif isinstance(v, dict):
                for k2, v2 in v.items():  # nested dicts flatten to "a/b", as W&B shows them
                    n = _number(v2)
                    if n is not None:
                        values[f"{key}/{k2}"] = n
            else:
                x = _scalar(v)  # a tensor's value read once: .item() waits for the device
                if x is not None:
                    values[key] = _number(x)
                    dict.__setitem__(self.summary, key, x)
        if values:
            self._emit("metrics", step=step, wall=_now(), values=values)
        self._pending = {}
        self.step = step + 1

    def define_metric(self, name, step_metric=None, summary=None, goal=None, **_):
        goal = {"minimize": "min", "maximize": "max", "min": "min", "max": "max"}.get(goal or summary or "", "")
        if goal and "*" not in name:
            self._emit("metric_goal", key=name, goal=goal)

    # --- artifacts -----------------------------------------------------------------------------

    def log_artifact(self, artifact, aliases=None, name=None, type=None):
        if isinstance(artifact, str):
            a = Artifact(name or os.path.basename(artifact), type or "file")
            (a.add_dir if os.path.isdir(artifact) else a.add_file)(artifact)
            artifact = a
        files, upload = [], []
        for path in sorted(artifact._files):
            local = artifact._files[path]
            sha, size = _sha256(local), os.path.getsize(local)
            files.append({"path": path, "sha256": sha, "size": size})
            upload.append((local, sha, size))
        aliases = list(aliases or [])
        if "latest" not in aliases:
            aliases.append("latest")
        self._emit("artifact_logged", _files=upload, name=artifact.name, artifact_type=artifact.type,
                   metadata=_plain(artifact.metadata), aliases=aliases, files=files, wall=_now())
        return artifact

    def use_artifact(self, ref, type=None):
        self._emit("artifact_used", ref=ref if isinstance(ref, str) else ref.name)
        return ref

    # --- watch ---------------------------------------------------------------------------------

    def watch(self, models, criterion=None, log="gradients", log_freq=1000, idx=None, log_graph=False):
        if log not in ("gradients", "parameters", "all", None):
            raise ValueError('watch(log=...) takes "gradients", "parameters", "all" or None')
        self._watch = _Watch(models if isinstance(models, (list, tuple)) else [models], log, int(log_freq))

    # --- the end -------------------------------------------------------------------------------

    def finish(self, exit_code=None, quiet=None):
        global run, config, summary
        if self._finished:
            return
        self._commit()
        status = "finished" if not exit_code else "failed"
        self._emit("run_finished", status=status, wall=_now())
        self._finished = True
        self._sink.close(float(os.environ.get("I3LAB_FINISH_TIMEOUT", "120")))
        if run is self:
            run = config = summary = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.finish(exit_code=1 if exc_type else 0)
        return False


class _Watch:
    """watch(): every log_freq log() calls, histograms of the model's parameters and gradients
    (parameters/NAME, gradients/NAME), as W&B's watch records them."""

    def __init__(self, models, what, freq):
        self.models, self.what, self.freq = models, what, max(1, freq)
        self.calls = 0

    def after_log(self, run_):
        self.calls += 1
        if self.what is None or self.calls % self.freq:
            return
        step = run_.step - 1 if run_.step > 0 else 0
        for i, model in enumerate(self.models):
            prefix = "" if len(self.models) == 1 else f"{i}."
            for name, p in model.named_parameters():
                if self.what in ("parameters", "all"):
                    h = Histogram(p)
                    run_._emit("histogram", key=f"parameters/{prefix}{name}", step=step, lo=h.lo, hi=h.hi, counts=h.counts)
                if self.what in ("gradients", "all") and p.grad is not None:
                    h = Histogram(p.grad)
                    run_._emit("histogram", key=f"gradients/{prefix}{name}", step=step, lo=h.lo, hi=h.hi, counts=h.counts)


# --- the module-level API, as wandb has it ------------------------------------------------------

def init(project=None, entity=None, name=None, config=None, tags=None, notes=None, group=None, id=None,
         resume=None, mode=None, url=None, token=None, dir=None, reinit=None, job_type=None, **_):
    """Starts a run and returns it (also as i3lab_client.run). `entity` and `job_type` are
    accepted for compatibility; i3lab has projects, not entities."""
    global run
    if run is not None:
        run.finish()
    mode = mode or os.environ.get("I3LAB_MODE") or os.environ.get("WANDB_MODE") or "online"
    if mode == "disabled":
        mode = "offline"
    if mode not in ("online", "offline"):
        raise ValueError('init(mode=...) takes "online" or "offline"')
    url = url or os.environ.get("I3LAB_URL") or "http://127.0.0.1:8080"
    token = token or os.environ.get("I3LAB_TOKEN")
    r = Run(project, name, config, tags, notes, group, id, resume, mode, url, token, dir)
    _set_run(r)
    return r


def _set_run(r):
    global run, config, summary
    run, config, summary = r, r.config, r.summary


def _need_run(what):
    if run is None:
        raise RuntimeError(f"i3lab: call init() before {what}()")
    return run


def log(data, step=None, commit=True):
    _need_run("log").log(data, step=step, commit=commit)


def define_metric(name, step_metric=None, summary=None, goal=None, **kwargs):
    _need_run("define_metric").define_metric(name, step_metric, summary, goal, **kwargs)


def watch(models, criterion=None, log="gradients", log_freq=1000, idx=None, log_graph=False):
    _need_run("watch").watch(models, criterion, log, log_freq, idx, log_graph)


def log_artifact(artifact, aliases=None, name=None, type=None):
    return _need_run("log_artifact").log_artifact(artifact, aliases, name, type)


def use_artifact(ref, type=None):
    return _need_run("use_artifact").use_artifact(ref, type)


def finish(exit_code=None, quiet=None):
    if run is not None:
        run.finish(exit_code)


@atexit.register
def _finish_at_exit():
    if run is not None:
        run.finish()
