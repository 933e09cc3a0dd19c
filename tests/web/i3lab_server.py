"""An i3lab server for the Python tests and benchmarks: start one, find its dashboard address,
post to its API, pick a free port. Standard library only."""
import json
import socket
import subprocess
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, err_path):
    """Starts `argv` (an i3lab coordinator --http or i3lab ui) with stderr in err_path; returns
    (process, dashboard URL without the trailing slash), read from its "dashboard: URL" line. A
    coordinator's process carries its ZeroMQ endpoint as .i3lab_endpoint."""
    err = open(err_path, "a")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()  # the child has its own copy
    for _ in range(4):
        line = proc.stdout.readline()
        if line.startswith("coordinator listening on "):  # a coordinator's ZeroMQ endpoint, for workers
            proc.i3lab_endpoint = line.split()[3].rstrip(",")
        if line.startswith("dashboard:"):
            return proc, line.split()[1].rstrip("/")
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{' '.join(argv[:2])} did not start: " + open(err_path).read())


def coordinator_argv(i3lab, db, http="127.0.0.1:0"):
    return [i3lab, "coordinator", "--db", db, "--listen", "tcp://127.0.0.1:*", "--http", http]


def post(url, path, body, timeout=120):
    """POSTs `body` as JSON and returns the parsed answer."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())
