"""One function over many files, in worker processes or this one, with a progress bar.

preprocess.py's passes each map a function over the corpus' files this way.
The largest files go first, in every pass and whatever the worker count (so the
output does not depend on it): a large file met last would keep one worker busy
while the others wait. Workers take MIDI files in batches of about BATCH_BYTES
(at most BATCH_FILES files): a small one takes well under a millisecond, less
than handing it to a worker and its result back. Other files, which music21
reads slowly, go one at a time.
"""

import ctypes
import functools
import os
import signal
from concurrent.futures import ProcessPoolExecutor

from tqdm import tqdm

from musicgen.readers import MIDI_SUFFIXES

BATCH_BYTES, BATCH_FILES = 64 * 1024, 64  # the files a worker takes at once
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def map_files(function, tasks, workers, description, start, context):
    """function(task) for each task (file index, path, ...), in task order by size, largest first.

    `start(context)` is called once in each process that runs tasks (a worker, or
    this one), so that what every task needs (a module-level function and its
    picklable context) is handed over once rather than with every file.
    """
    sizes = [_file_size(task[1]) for task in tasks]
    order = sorted(range(len(tasks)), key=lambda i: sizes[i], reverse=True)
    tasks, sizes = [tasks[i] for i in order], [sizes[i] for i in order]
    with tqdm(total=len(tasks), unit="file", desc=description, dynamic_ncols=True) as progress:
        if workers <= 1:
            start(context)
            for task in tasks:
                yield function(task)
                progress.update()
            return
        with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(start, context)) as pool:
            for results in pool.map(functools.partial(_each, function), _batches(tasks, sizes)):
                yield from results
                progress.update(len(results))


def _batches(tasks, sizes):
    """Consecutive runs of the tasks: MIDI files of about BATCH_BYTES together or BATCH_FILES files, any other
    file alone."""
    batches, batch, total = [], [], 0
    for task, size in zip(tasks, sizes):
        batch.append(task)
        total += size
        alone = not str(task[1]).lower().endswith(MIDI_SUFFIXES)
        if alone or total >= BATCH_BYTES or len(batch) == BATCH_FILES:
            batches.append(batch)
            batch, total = [], 0
    return batches + [batch] if batch else batches


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
