"""A client of app.py for the tests and benchmarks/app_load.py: the server on a free port, its forms, a browser."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class Server:
    """`python app.py` on a free port, offering the runs in `checkpoints`, with its jobs' folders and its log
    (server.log) under `temp`."""

    def __init__(self, temp, checkpoints, *options):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url, self.temp = f"http://127.0.0.1:{self.port}", temp
        self.log = temp / "server.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "app.py", "--port", str(self.port), "--temp-dir", str(temp), "--checkpoints",
                 str(checkpoints), *options], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.get("/api/models")
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                time.sleep(0.2)
        raise AssertionError("the server did not answer within 60 s")

    def get(self, path, method="GET"):
        with urllib.request.urlopen(urllib.request.Request(self.url + path, method=method), timeout=120) as answer:
            return answer.read()

    def json(self, path, method="GET"):
        return json.loads(self.get(path, method))

    def post(self, path, fields=(), files=()):
        """(status, headers, body) of a multipart form: `fields` (name, value) pairs, `files` (name, file name,
        bytes)."""
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                 for name, value in fields]
        parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
                  for name, filename, content in files]
        request = urllib.request.Request(self.url + path, data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def finished_job(self, fields=(), files=()):
        """The last state of a job made through /api/jobs."""
        status, _, body = self.post("/api/jobs", fields, files)
        assert status == 202, body
        job = json.loads(body)["id"]
        deadline = time.time() + 300
        while time.time() < deadline:
            state = self.json(f"/api/jobs/{job}")
            if state["state"] not in ("queued", "running"):
                return state
            time.sleep(0.2)
        raise AssertionError("the job did not finish")

    def job_folders(self):
        return [folder for root in self.temp.glob("musicgen-app-*") for folder in root.iterdir()]

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)




def headless_chromium(width=1000, height=1400):
    """A Selenium driver of headless Chromium, or None where Chromium or its driver is not installed."""
    if not (CHROMIUM and CHROMEDRIVER):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def stuck_reader(path, limits):
    """The upload reader, but stuck on a file named stuck.mid where preprocessing's time limit cannot reach it (as
    a parser caught in C code): its alarm signal blocked, it never ends."""
    from musicgen.limits import refusal_of

    if path.name != "stuck.mid":
        return refusal_of(path, limits)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    while True:
        time.sleep(1)
