"""Generation jobs for app.py: a bounded queue, a few worker threads, progress, cancelling, and a temporary folder
of each job's own.

A job runs generate.py's own calls in a worker thread. What they print (the
style chosen, what was written) is kept as the job's lines, so the page says
what the command line would; the sampler tells the job how far it has got at
every step, and that is where a cancelled job, or one past its time limit,
stops. Memory stays bounded however many people ask at once: a fixed number of
workers, a queue of fixed length (a request beyond it is refused as busy), and
finished jobs kept on disk only, a fixed number for a fixed time.
"""

import io
import queue
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from musicgen.errors import UserError


class Cancelled(Exception):
    """Raised inside a job's generation once someone has cancelled it."""


class Busy(Exception):
    """The queue is full: the request is refused, to be tried again later."""


class Job:
    """One request's generation: its state, progress, printed lines, error and files (in `folder`)."""

    def __init__(self, folder, work, time_limit):
        self.id = folder.name
        self.folder = folder
        self.work = work  # work(job) -> [{kind: file name}], one dict a piece
        self.time_limit = time_limit
        self.state = "queued"  # then running, and done, failed or cancelled
        self.progress = None  # (reached, total or None, unit) of the slowest piece
        self.lines = []
        self.error = None
        self.bug = False  # whether the error is ours, not the request's
        self.pieces = []
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.finished_at = None
        self._deadline = None

    def report(self, reached, total, unit):
        """The sampler's progress function: keeps how far it has got, and stops a cancelled job or one past its
        time limit."""
        if self.cancelled.is_set():
            raise Cancelled
        if time.monotonic() > self._deadline:
            raise UserError(f"generating took longer than this server's limit of {self.time_limit:g} s; "
                            f"ask for less music")
        self.progress = (reached, total, unit)

    def write(self, text):
        """What the job printed, as whole lines."""
        if self.lines and not self.lines[-1].endswith("\n"):
            text = self.lines.pop() + text
        self.lines.extend(text.splitlines(keepends=True))

    def run(self):
        self.state, self._deadline = "running", time.monotonic() + self.time_limit
        try:
            self.pieces = self.work(self)
            self.state = "done"
        except Cancelled:
            self.state = "cancelled"
        except UserError as error:
            self.state, self.error = "failed", str(error)
        except Exception as error:  # a bug: its traceback goes to the server's log, one line to the page
            import traceback

            traceback.print_exc(file=sys.__stderr__)
            self.state, self.bug = "failed", True
            self.error = f"internal error ({type(error).__name__}); the server's log has more"
        finally:
            self.finished_at = time.monotonic()
            self.finished.set()

    def files(self):
        """Every file name the job made: the only names its folder is read by."""
        return {name for piece in self.pieces for name in piece.values()}


class JobQueue:
    """Jobs run by `workers` threads in the order they came; at most `max_waiting` wait. Finished jobs are kept
    `keep_seconds` (at most `keep_jobs` of them) for their files to be fetched, then their folders are removed."""

    def __init__(self, root=None, workers=2, max_waiting=16, time_limit=300.0, keep_jobs=32, keep_seconds=1800.0):
        self.root = Path(tempfile.mkdtemp(prefix="musicgen-app-", dir=root))
        self.max_waiting, self.time_limit = max_waiting, time_limit
        self.keep_jobs, self.keep_seconds = keep_jobs, keep_seconds
        self.jobs = {}
        self.waiting = queue.Queue()
        self.lock = threading.Lock()
        self.output = _JobOutput(sys.stdout)
        sys.stdout = self.output
        self.threads = [threading.Thread(target=self._serve, daemon=True, name=f"generator-{i}")
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def new_folder(self):
        """A fresh folder, named by an unguessable id, for one job's upload and files."""
        folder = self.root / secrets.token_urlsafe(16)
        folder.mkdir()
        return folder

    def submit(self, folder, work):
        """A Job that will run work(job) in `folder` (from new_folder); Busy when the queue is full."""
        self.sweep()
        with self.lock:
            if self.waiting.qsize() >= self.max_waiting:
                shutil.rmtree(folder, ignore_errors=True)
                raise Busy(f"the server has {self.max_waiting} requests waiting already; try again in a minute")
            job = self.jobs[folder.name] = Job(folder, work, self.time_limit)
            self.waiting.put(job)
        return job

    def get(self, job_id):
        return self.jobs.get(job_id)

    def position(self, job):
        """How many jobs wait before `job` (0 once it runs)."""
        with self.waiting.mutex:
            waiting = list(self.waiting.queue)
        return waiting.index(job) if job in waiting else 0

    def forget(self, job):
        """Remove a finished job and its folder now (the HTTP API's, once its answer is sent)."""
        with self.lock:
            self.jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def sweep(self):
        """Forget finished jobs past their time, and the oldest beyond the number kept."""
        now = time.monotonic()
        with self.lock:
            finished = sorted((job for job in self.jobs.values() if job.finished.is_set()),
                              key=lambda job: job.finished_at)
        excess = len(finished) - self.keep_jobs
        for index, job in enumerate(finished):
            if index < excess or now - job.finished_at > self.keep_seconds:
                self.forget(job)

    def close(self):
        """Cancel what is running and remove every job's folder."""
        for job in list(self.jobs.values()):
            job.cancelled.set()
        for _ in self.threads:
            self.waiting.put(None)
        for thread in self.threads:
            thread.join(timeout=10)
        sys.stdout = self.output.fallback
        shutil.rmtree(self.root, ignore_errors=True)

    def _serve(self):
        while (job := self.waiting.get()) is not None:
            if job.cancelled.is_set():
                job.state, job.finished_at = "cancelled", time.monotonic()
                job.finished.set()
                continue
            self.output.route(job)
            try:
                job.run()
            finally:
                self.output.route(None)


class _JobOutput(io.TextIOBase):
    """sys.stdout while the server runs: what a worker thread prints goes to the job it runs, anything else to the
    real stdout."""

    def __init__(self, fallback):
        self.fallback = fallback
        self.routes = {}

    def route(self, job):
        self.routes[threading.get_ident()] = job

    def writable(self):
        return True

    def write(self, text):
        job = self.routes.get(threading.get_ident())
        if job is None:
            return self.fallback.write(text)
        job.write(text)
        return len(text)

    def flush(self):
        self.fallback.flush()
