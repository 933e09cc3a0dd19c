"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by
python3-selenium) against a live `i3lab coordinator --http`, runs written through the HTTP API.

Run by ctest: python3 browser_test.py I3LAB_BINARY SCREENSHOT_DIR. Exits 77 (skipped) when
Chromium or Selenium is not installed. Screenshots of each page go to SCREENSHOT_DIR.
"""
import os
import subprocess
import sys
import tempfile
import time
import unittest

import headless_chromium
import i3lab_server
from i3lab_server import post

I3LAB = SHOTS = None
XSS = '<img src=x onerror="document.title=\'pwned\'">'


def run_events(uid, name, steps, lr):
    ev = [{"run": uid, "seq": 1, "type": "run_created", "project": "browser", "name": name, "group": "",
           "tags": ["demo", "<script>alert(1)</script>"], "notes": "", "config": {"optim": {"lr": lr}, "model": {"d": 64}},
           "wall": 1000.0}]
    seq = 1
    for s in range(1, steps + 1):
        seq += 1
        ev.append({"run": uid, "seq": seq, "type": "metrics", "step": s, "wall": 1000.0 + s,
                   "values": {"train/loss": 5.0 / s + lr, "train/tokens_seen": 512.0 * s}})
    for s in (100, 200, 300):
        seq += 1
        ev.append({"run": uid, "seq": seq, "type": "table", "name": "samples", "step": s, "columns": ["prompt", "output"],
                   "rows": [["hello", f"output at step {s}"], ["tag", XSS]]})
        seq += 1
        ev.append({"run": uid, "seq": seq, "type": "histogram", "key": "parameters/w", "step": s, "lo": -1.0 / s * 100,
                   "hi": 1.0 / s * 100, "counts": [1, 4, 9, 16, 9, 4, 1]})
    return ev, seq


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="i3lab-browser-")
        folder = cls.tmp.name
        cls.proc, cls.url = i3lab_server.start(i3lab_server.coordinator_argv(I3LAB, os.path.join(folder, "i3lab.db")),
                                               os.path.join(folder, "coordinator.err"))
        cls.uid = "a" * 32
        events, cls.seq = run_events(cls.uid, XSS, 300, 0.001)
        cls.run_id = post(cls.url, "/api/v1/events", {"events": events})["runs"][cls.uid]
        other, _ = run_events("b" * 32, "second run", 150, 0.004)
        cls.other_id = post(cls.url, "/api/v1/events", {"events": other})["runs"]["b" * 32]
        cls.browser = headless_chromium.Browser(folder)
        cls.driver = cls.browser.driver

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.proc.terminate()
        cls.proc.wait(30)
        cls.tmp.cleanup()

    def wait_for(self, script, timeout=10):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        try:
            return self.browser.wait_for(script, timeout)
        except TimeoutError as e:
            self.fail(str(e))

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def test_1_runs_page_lists_runs_and_escapes_names(self):
        d = self.driver
        d.get(self.url + "/")
        self.wait_for("document.querySelectorAll('.vrow[data-run]').length >= 2")
        names = self.driver.execute_script("return [...document.querySelectorAll('.vrow[data-run] a')].map(a => a.textContent)")
        self.assertIn(XSS, names)  # shown as text
        self.assertEqual(d.execute_script("return document.querySelectorAll('.vrows img, .vrows script').length"), 0)
        self.assertNotEqual(d.title, "pwned")
        # The live stream's first event is the version the list was read at: no second read.
        self.wait_for("document.getElementById('live').classList.contains('on')")
        time.sleep(0.5)
        reads = d.execute_script("return performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/runs?')).length")
        self.assertEqual(reads, 1)
        self.shot("runs")

    def test_2_run_page_draws_charts_samples_and_histograms(self):
        d = self.driver
        d.get(f"{self.url}/runs/{self.run_id}")
        # The loss chart drew the server's buckets.
        points = self.wait_for("Number(document.querySelector('.chart[data-key=\"train/loss\"] canvas')?.dataset.points)")
        self.assertGreater(points, 100)
        # The samples table: newest step first, then a chosen step through the slider.
        self.wait_for("document.querySelector('[data-table=\"samples\"] .tablewrap')?.dataset.step === '300'")
        d.execute_script("const s = document.querySelector('[data-table=\"samples\"] input[type=range]'); s.value = 0; s.dispatchEvent(new Event('input'))")
        self.wait_for("document.querySelector('[data-table=\"samples\"] .tablewrap')?.dataset.step === '100'")
        cells = d.execute_script("return [...document.querySelectorAll('[data-table=\"samples\"] td')].map(td => td.textContent)")
        self.assertIn("output at step 100", cells)
        self.assertIn(XSS, cells)
        self.assertEqual(d.execute_script("return document.querySelectorAll('main img').length"), 0)
        # The histogram heat map drew one column per logged step.
        self.assertEqual(self.wait_for("Number(document.querySelector('canvas.heatmap')?.dataset.columns)"), 3)
        self.assertNotEqual(d.title, "pwned")
        self.shot("run")

    def test_3_a_point_logged_after_the_page_loaded_appears_within_2_s(self):
        d = self.driver
        d.get(f"{self.url}/runs/{self.run_id}")
        self.wait_for("Number(document.querySelector('.chart[data-key=\"train/loss\"] canvas')?.dataset.points) > 0")
        self.wait_for("document.getElementById('live').classList.contains('on')")
        before = d.execute_script("return Number(document.querySelector('.chart[data-key=\"train/loss\"] canvas').dataset.points)")
        seq = self.__class__.seq = self.__class__.seq + 1
        post(self.url, "/api/v1/events", {"events": [{"run": self.uid, "seq": seq, "type": "metrics", "step": 301, "wall": 1301.0,
                                                      "values": {"train/loss": 0.5, "val/loss": 0.7}}]})
        start = time.time()
        self.wait_for(f"Number(document.querySelector('.chart[data-key=\"train/loss\"] canvas').dataset.points) > {before}"
                      " && document.querySelector('.chart[data-key=\"val/loss\"] canvas')?.dataset.points === '1'", timeout=2)
        print(f"\nthe new point was on the page after {time.time() - start:.2f} s")
        self.shot("run-live")

    def test_4_compare_page_diffs_configs_and_draws_parallel_coordinates(self):
        d = self.driver
        d.get(f"{self.url}/compare?runs={self.run_id},{self.other_id}")
        self.wait_for("document.querySelector('#config-diff tbody tr')")
        keys = d.execute_script("return [...document.querySelectorAll('#config-diff tbody tr td:first-child')].map(td => td.textContent)")
        self.assertEqual(keys, ["optim.lr"])  # model.d is equal: not shown
        self.assertEqual(self.wait_for("document.querySelector('canvas.parallel')?.dataset.lines"), "2")
        self.shot("compare")

    def test_5_cluster_page_shows_and_cancels_jobs(self):
        d = self.driver
        job = post(self.url, "/api/v1/jobs", {"jobs": [{"kind": "command", "argv": ["sleep", "60"], "name": "waits"}]})["ids"][0]
        d.get(self.url + "/cluster")
        self.wait_for(f"document.querySelector('#jobs tr[data-job=\"{job}\"] button')")
        d.execute_script(f"document.querySelector('#jobs tr[data-job=\"{job}\"] button').click()")
        self.wait_for(f"document.querySelector('#jobs tr[data-job=\"{job}\"] .status')?.textContent === 'cancelled'")
        self.shot("cluster")

    def test_6_a_narrow_window_keeps_everything_reachable(self):
        d = self.driver
        d.set_window_size(420, 900)
        try:
            d.get(f"{self.url}/runs/{self.run_id}")
            self.wait_for("Number(document.querySelector('.chart[data-key=\"train/loss\"] canvas')?.dataset.points) > 0")
            overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            self.assertLessEqual(overflow, 0)
            self.shot("run-narrow")
        finally:
            d.set_window_size(1280, 1400)

    def test_7_sweep_pages_show_trials_progress_importance_and_parallel_coordinates(self):
        d = self.driver
        folder = self.tmp.name
        sweep_file = os.path.join(folder, "sweep.yaml")
        with open(sweep_file, "w") as f:
            f.write("method: bayes\nmetric: {name: loss, goal: minimize}\nname: <b>bold</b> sweep\n"
                    "parameters:\n  x: {min: -1.0, max: 1.0}\n  choice: {values: [a, b, c]}\n"
                    "run_cap: 12\nmax_concurrent: 2\njob: {kind: synthetic, config: {steps: 20, step_ms: 2}}\n")
        endpoint = self.proc.i3lab_endpoint
        worker = subprocess.Popen([I3LAB, "worker", "--coordinator", endpoint, "--name", "browser-w", "--workdir",
                                   os.path.join(folder, "w")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            made = subprocess.run([I3LAB, "sweep", sweep_file, "--coordinator", endpoint], capture_output=True, text=True, timeout=60)
            self.assertEqual(made.returncode, 0, made.stderr)
            sweep = int(made.stdout)
            d.get(self.url + "/sweeps")
            self.wait_for(f"document.querySelector('#sweeps tr[data-sweep=\"{sweep}\"] a')")
            self.assertEqual(d.execute_script(f"return document.querySelector('#sweeps tr[data-sweep=\"{sweep}\"] a').textContent"),
                             "<b>bold</b> sweep")  # text, not HTML
            d.get(f"{self.url}/sweeps/{sweep}")
            # Live: the page follows the sweep to its end without a reload.
            self.wait_for("document.querySelector('.status')?.textContent === 'finished'", 90)
            self.wait_for("document.querySelectorAll('#trials tbody tr').length === 12")
            self.assertEqual(d.execute_script("return document.querySelectorAll('#importance tbody tr').length"), 2)
            self.assertEqual(self.wait_for("document.querySelector('canvas.parallel')?.dataset.lines"), "12")
            self.assertEqual(self.wait_for("document.querySelector('.chart')?.dataset.points"), "12")
            self.assertIn("best: trial ", d.execute_script("return document.querySelector('#sweep-best').textContent"))
            self.shot("sweep")
            # A trial's run opens its run page.
            d.execute_script("document.querySelector('#trials tbody tr a').click()")
            self.wait_for("location.pathname.startsWith('/runs/') && document.querySelector('.chart[data-key=\"loss\"]')")
        finally:
            worker.terminate()
            worker.wait(30)


if __name__ == "__main__":
    why_not = headless_chromium.missing()
    if why_not:
        print("skipped: " + why_not)
        sys.exit(77)
    I3LAB, SHOTS = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
