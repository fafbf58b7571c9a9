"""One function over many files, in worker processes or this one, with a progress bar.

preprocess.py's passes each map a function over the corpus' files this way.
The largest files go first, in every pass and whatever the worker count (so the
output does not depend on it): a large file met last would keep one worker busy
while the others wait. Workers take MIDI files in batches of about BATCH_BYTES
(at most BATCH_FILES files): a small one takes well under a millisecond, less
than handing it to a worker and its result back. Other files, which music21
reads slowly, go one at a time.
"""

import collections
import ctypes
import os
import signal
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from musicgen.readers import MIDI_SUFFIXES

BATCH_BYTES, BATCH_FILES = 64 * 1024, 64  # the files a worker takes at once
IN_FLIGHT = 4  # batches a worker may have waiting to be read back: enough to keep it busy, few to hold
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def map_files(function, tasks, workers, description, start, context):
    """function(task) for each of `tasks`, a sequence of (file index, path, ...), largest file first.

    `start(context)` is called once in each process that runs tasks (a worker, or
    this one), so that what every task needs (a module-level function and its
    picklable context) is handed over once rather than with every file. A task is
    taken from the sequence as it is handed out, and at most IN_FLIGHT batches a
    worker wait for their results to be read, so a lazy sequence costs nothing
    per file but its size and place in the order (16 bytes).
    """
    sizes = np.fromiter((_file_size(tasks[i][1]) for i in range(len(tasks))), dtype=np.int64, count=len(tasks))
    order = np.argsort(-sizes, kind="stable")  # ties keep the files' order
    with tqdm(total=len(tasks), unit="file", desc=description, dynamic_ncols=True) as progress:
        if workers <= 1:
            start(context)
            for index in order.tolist():
                yield function(tasks[index])
                progress.update()
            return
        with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(start, context)) as pool:
            pending = collections.deque()
            try:
                for batch in _batches(tasks, order, sizes):
                    pending.append(pool.submit(_each, function, batch))
                    while len(pending) >= IN_FLIGHT * workers or (pending and pending[0].done()):
                        yield from _first_results(pending, progress)
                while pending:
                    yield from _first_results(pending, progress)
            finally:
                for future in pending:
                    future.cancel()


def _first_results(pending, progress):
    """The results of the oldest batch handed out, waited for."""
    results = pending.popleft().result()
    progress.update(len(results))
    return results


def _batches(tasks, order, sizes):
    """Consecutive runs of the tasks in `order`: MIDI files of about BATCH_BYTES together or BATCH_FILES files,
    any other file alone."""
    batch, total = [], 0
    for index in order.tolist():
        task = tasks[index]
        batch.append(task)
        total += int(sizes[index])
        alone = not str(task[1]).lower().endswith(MIDI_SUFFIXES)
        if alone or total >= BATCH_BYTES or len(batch) == BATCH_FILES:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _each(function, tasks):
    return [function(task) for task in tasks]


def _start_worker(start, context):
    """A worker process's start: it is to die with the main process, then it takes the context.

    Killed outright (SIGKILL), the main process cannot stop its workers, and they
    would wait forever for files that never come. Linux's PR_SET_PDEATHSIG has the
    kernel kill them with it; elsewhere they end with the pool, as usual.
    """
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass
    start(context)


def _file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # its task reports the problem
