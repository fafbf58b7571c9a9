"""musicgen/jobs.py: the app's queue of generation jobs, with stand-in work instead of a model."""

import sys
import threading
import time

import pytest

from musicgen.errors import UserError
from musicgen.jobs import Busy, JobQueue


@pytest.fixture
def jobs(tmp_path):
    queues = []

    def make(**settings):
        queues.append(JobQueue(tmp_path, **settings))
        return queues[-1]

    yield make
    for queue in queues:
        queue.close()


def steps(count, pause=0.01):
    """Work that reports `count` steps, as the sampler does, and makes one piece."""
    def work(job):
        for step in range(count):
            job.report(step, count, "event")
            time.sleep(pause)
        return [{"midi": "piece.mid"}]
    return work


def wait(job, seconds=10):
    assert job.finished.wait(seconds), "the job did not finish"
    return job


def test_a_job_runs_to_its_pieces_and_keeps_its_progress(jobs):
    queue = jobs()
    job = wait(queue.submit(queue.new_folder(), steps(5)))
    assert (job.state, job.pieces, job.progress, job.files()) == ("done", [{"midi": "piece.mid"}], (4, 5, "event"),
                                                                  {"piece.mid"})


def test_beyond_the_waiting_room_a_request_is_refused_as_busy_and_its_folder_removed(jobs):
    queue = jobs(workers=1, max_waiting=2)
    release = threading.Event()
    running = queue.submit(queue.new_folder(), lambda job: release.wait(10) and [])
    while running.state != "running":
        time.sleep(0.01)
    waiting = [queue.submit(queue.new_folder(), steps(1)) for _ in range(2)]
    assert [queue.position(job) for job in waiting] == [0, 1]
    refused = queue.new_folder()
    with pytest.raises(Busy):
        queue.submit(refused, steps(1))
    assert not refused.exists()
    release.set()
    assert [wait(job).state for job in waiting] == ["done", "done"]


def test_a_cancelled_job_stops_at_its_next_step_and_a_waiting_one_never_starts(jobs):
    queue = jobs(workers=1)
    long = queue.submit(queue.new_folder(), steps(10_000))
    waiting = queue.submit(queue.new_folder(), steps(10_000))
    while not long.progress:
        time.sleep(0.01)
    waiting.cancelled.set()
    long.cancelled.set()
    assert wait(long).state == "cancelled" and long.progress[0] < 10_000
    assert wait(waiting).state == "cancelled" and waiting.progress is None


def test_a_job_past_the_time_limit_fails_with_a_line_that_says_so(jobs):
    queue = jobs(time_limit=0.2)
    job = wait(queue.submit(queue.new_folder(), steps(10_000)))
    assert job.state == "failed" and not job.bug
    assert job.error == "generating took longer than this server's limit of 0.2 s; ask for less music"


def test_what_a_request_did_wrong_is_its_error_and_a_bug_is_marked_as_ours(jobs):
    queue = jobs()

    def refused(job):
        raise UserError("the seed is empty")

    def broken(job):
        raise ValueError("a bug")

    failed = wait(queue.submit(queue.new_folder(), refused))
    assert (failed.state, failed.error, failed.bug) == ("failed", "the seed is empty", False)
    bug = wait(queue.submit(queue.new_folder(), broken))
    assert bug.bug and bug.error.startswith("internal error (ValueError)")


def test_what_each_job_prints_is_its_own_and_the_rest_goes_to_stdout(jobs, capsys):
    queue = jobs(workers=2)

    def chatty(word):
        def work(job):
            for index in range(30):
                print(f"{word} {index}", end="\n" if index % 2 else "")
                time.sleep(0.002)
            return []
        return work

    first, second = (queue.submit(queue.new_folder(), chatty(word)) for word in ("ping", "pong"))
    print("from the server itself")
    wait(first), wait(second)
    assert "".join(first.lines) == "".join(f"ping {i}" + ("\n" if i % 2 else "") for i in range(30))
    assert all(line.endswith("\n") for line in first.lines) and len(first.lines) == 15
    assert "".join(second.lines).count("pong") == 30 and "ping" not in "".join(second.lines)
    assert capsys.readouterr().out == "from the server itself\n"


def test_finished_jobs_are_forgotten_past_their_number_or_time_and_close_removes_everything(jobs):
    queue = jobs(keep_jobs=1, keep_seconds=3600)
    old, new = (wait(queue.submit(queue.new_folder(), steps(1))) for _ in range(2))
    queue.sweep()
    assert queue.get(old.id) is None and not old.folder.exists()
    assert queue.get(new.id) is new and new.folder.exists()
    queue.keep_seconds = 0
    queue.sweep()
    assert queue.get(new.id) is None and not new.folder.exists()
    running = queue.submit(queue.new_folder(), steps(10_000))
    while not running.progress:
        time.sleep(0.01)
    queue.close()
    assert running.finished.wait(5) and running.state == "cancelled"
    assert not queue.root.exists() and sys.stdout is queue.output.fallback
