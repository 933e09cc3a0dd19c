"""A headless Chromium driven by Selenium, for the browser tests and the dashboard benchmark.

Chromium and chromedriver run on ports of our choosing, both reached at 127.0.0.1: Selenium's own
Service waits for "localhost", and chromedriver looks for the browser it starts at "localhost",
which a machine without /etc/hosts (a minimal chroot) cannot resolve.
"""
import os
import shutil
import socket
import subprocess
import time

from i3lab_server import free_port


def missing():
    """Why the browser cannot run here (a line naming what to install), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (scripts/setup --test-tools installs it)"
    if not (shutil.which("chromium") and os.path.exists("/usr/bin/chromedriver")):
        return "chromium and chromium-driver are not installed (scripts/setup --test-tools installs them)"
    return None


def _wait_for_port(port, procs, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}: chromium or chromedriver did not start")
            time.sleep(0.1)


class Browser:
    """Chromium with its profile in `folder`, and `driver`, a Selenium session on it."""

    def __init__(self, folder, width=1280, height=1400):
        from selenium import webdriver
        self.procs = []
        chrome_port, driver_port = free_port(), free_port()
        self.procs.append(subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--window-size={width},{height}", f"--user-data-dir={folder}/chrome", f"--remote-debugging-port={chrome_port}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen(["/usr/bin/chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        try:
            for port in (chrome_port, driver_port):
                _wait_for_port(port, self.procs)
            options = webdriver.ChromeOptions()
            options.debugger_address = f"127.0.0.1:{chrome_port}"
            self.driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{driver_port}", options=options)
        except Exception:
            self._stop_procs()
            raise
        self.driver.set_script_timeout(30)

    def wait_for(self, script, timeout=10):
        """Polls a JavaScript expression until it is truthy; returns its value, or raises
        TimeoutError naming the expression."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.driver.execute_script("return " + script)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for: {script}")

    def _stop_procs(self):
        for p in self.procs:
            p.terminate()
            p.wait(30)

    def close(self):
        self.driver.quit()
        self._stop_procs()
