"""The Python client (clients/python/i3lab_client.py) against a live `i3lab coordinator --http`:
a training script written the way the published i3 trainer uses W&B, on a small real torch
model; a coordinator killed and restarted while a script logs; offline mode and `i3lab sync`.

Run by ctest: python3 python_client_test.py I3LAB_BINARY. Exits 77 (skipped) without torch.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
import i3lab_server  # noqa: E402
from i3lab_server import free_port  # noqa: E402
I3LAB = None


class Coordinator:
    def __init__(self, folder, port):
        self.folder, self.port = folder, port
        self.url = f"http://127.0.0.1:{port}"
        self.start()

    def start(self):
        self.proc, _ = i3lab_server.start(
            i3lab_server.coordinator_argv(I3LAB, os.path.join(self.folder, "i3lab.db"), f"127.0.0.1:{self.port}"),
            os.path.join(self.folder, "coordinator.err"))

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as res:
            return json.loads(res.read())

    def run_by_uid(self, uid):
        for r in self.get("/api/v1/runs")["runs"]:
            if r["uid"] == uid:
                return r
        return None


TRAINER = r'''
import sys, torch
sys.path.insert(0, {client!r})
import i3lab_client as wandb

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
config = {{"model": {{"d_model": 32}}, "lr": 1e-2, "batch_size": 8}}
wandb.init(project="i3-test", entity="someone", config=config, name="published-style",
           tags=["hybrid", "test"], notes="as the published trainer calls it")
assert wandb.run is not None
wandb.config.update({{"max_iters": {steps}}})
wandb.watch(model, log="all", log_freq=100)
for it in range({steps}):
    x = torch.randn(8, 16)
    y = torch.randint(0, 4, (8,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    wandb.log({{"train/loss": loss.item(), "train/lr": 1e-2, "iter": it}})
    if it % 100 == 99:
        table = wandb.Table(columns=["prompt", "output"])
        table.add_data("hello", "<b>sample " + str(it) + "</b>")
        wandb.log({{"samples": table}}, commit=False)
    {pause}
print(wandb.run.id)
wandb.finish()
'''


def run_trainer(url, steps, pause="", mode=None, folder=None, finish_timeout=60):
    script = TRAINER.format(client=os.path.join(HERE, "..", "..", "clients", "python"), steps=steps, pause=pause)
    env = dict(os.environ, I3LAB_URL=url, I3LAB_FINISH_TIMEOUT=str(finish_timeout))
    if mode:
        env["I3LAB_MODE"] = mode
    return subprocess.Popen([sys.executable, "-c", script], env=env, cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class PythonClient(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="i3lab-pyclient-")
        self.folder = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_script_written_for_wandb_logs_to_i3lab(self):
        c = Coordinator(self.folder, free_port())
        try:
            p = run_trainer(c.url, 300)
            out, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
            uid = out.strip().splitlines()[-1]
            r = c.run_by_uid(uid)
            self.assertIsNotNone(r, "the run is not on the server")
            self.assertEqual(r["name"], "published-style")
            self.assertEqual(r["project"], "i3-test")
            self.assertEqual(r["tags"], ["hybrid", "test"])
            self.assertEqual(r["notes"], "as the published trainer calls it")
            self.assertEqual(r["status"], "finished")
            self.assertEqual(r["config"]["max_iters"], 300)
            self.assertEqual(r["config"]["model"]["d_model"], 32)
            run = c.get(f"/api/v1/runs/{r['id']}")
            # log() without a step: steps 0..299, each once.
            loss = r["summary"]["train/loss"]
            self.assertEqual(loss["count"], 300)
            self.assertEqual(loss["last_step"], 299)
            points = c.get(f"/api/v1/runs/{r['id']}/series?key=iter&buckets=1000")["series"]["iter"]
            self.assertEqual([b[0] for b in points], list(range(300)))
            self.assertEqual([b[4] for b in points], list(range(300)))
            # watch(log="all", log_freq=100): parameters and gradients of the real model.
            self.assertIn("parameters/0.weight", run["histograms"])
            self.assertIn("gradients/2.bias", run["histograms"])
            hist = c.get(f"/api/v1/runs/{r['id']}/histograms?key=parameters/0.weight")["histograms"]
            self.assertEqual(len(hist), 3)
            self.assertEqual(sum(hist[0]["counts"]), 16 * 32)
            table = c.get(f"/api/v1/runs/{r['id']}/table?name=samples")
            # commit=False after the step's log: the table joins the next step, as in W&B.
            self.assertEqual(table["steps"], [100, 200, 300])
            self.assertEqual(table["rows"][0][1], "<b>sample 299</b>")
        finally:
            c.stop()

    def test_nothing_is_lost_when_the_server_restarts(self):
        port = free_port()
        c = Coordinator(self.folder, port)
        try:
            p = run_trainer(c.url, 400, pause="import time; time.sleep(0.01)")
            time.sleep(2.0)
            c.kill()          # mid-run: the client queues and retries
            time.sleep(3.0)
            c.start()
            out, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
            r = c.run_by_uid(out.strip().splitlines()[-1])
            self.assertEqual(r["summary"]["iter"]["count"], 400)
            points = c.get(f"/api/v1/runs/{r['id']}/series?key=iter&buckets=1000")["series"]["iter"]
            self.assertEqual([b[0] for b in points], list(range(400)))
            self.assertEqual(r["status"], "finished")
        finally:
            c.stop()

    def test_what_a_server_gone_for_good_did_not_take_is_saved_for_sync(self):
        c = Coordinator(self.folder, free_port())
        p = run_trainer(c.url, 300, pause="import time; time.sleep(0.01)", folder=self.folder, finish_timeout=1)
        time.sleep(1.5)
        c.kill()  # and it stays away
        out, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, err)
        uid = out.strip().splitlines()[-1]
        unsent = os.path.join(self.folder, "i3lab", f"unsent-run-{uid}")
        self.assertIn(f"--from {unsent}", err)
        db = os.path.join(self.folder, "i3lab.db")
        s = subprocess.run([I3LAB, "sync", "--from", unsent, "--to", db, "--json"], capture_output=True, text=True)
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertGreater(json.loads(s.stdout)["events_applied"], 0)
        runs = subprocess.run([I3LAB, "runs", "--db", db, "--json"], capture_output=True, text=True)
        self.assertEqual(runs.returncode, 0, runs.stderr)
        [r] = json.loads(runs.stdout)
        self.assertEqual(r["uid"], uid)
        self.assertEqual(r["summary"]["iter"]["count"], 300)
        self.assertEqual(r["summary"]["iter"]["last_step"], 299)
        self.assertEqual(r["status"], "finished")

    def test_offline_runs_are_stored_by_sync(self):
        p = run_trainer("http://127.0.0.1:9", 120, mode="offline", folder=self.folder)
        out, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, err)
        uid = out.strip().splitlines()[-1]
        offline = os.path.join(self.folder, "i3lab", f"offline-run-{uid}")
        self.assertTrue(os.path.isfile(os.path.join(offline, "events.jsonl")))
        db = os.path.join(self.folder, "synced.db")
        for _ in range(2):  # twice: the second adds nothing
            s = subprocess.run([I3LAB, "sync", "--from", offline, "--to", db, "--json"], capture_output=True, text=True)
            self.assertEqual(s.returncode, 0, s.stderr)
        report = json.loads(s.stdout)
        self.assertEqual(report["events_applied"], 0)
        runs = subprocess.run([I3LAB, "runs", "--db", db, "--json"], capture_output=True, text=True)
        self.assertEqual(runs.returncode, 0, runs.stderr)
        [r] = json.loads(runs.stdout)
        self.assertEqual(r["uid"], uid)
        self.assertEqual(r["summary"]["iter"]["count"], 120)
        self.assertEqual(r["status"], "finished")


if __name__ == "__main__":
    try:
        import torch  # noqa: F401
    except ImportError:
        print("skipped: python3-torch is not installed (scripts/setup --test-tools installs it)")
        sys.exit(77)
    I3LAB = sys.argv.pop(1)
    unittest.main(verbosity=2)
