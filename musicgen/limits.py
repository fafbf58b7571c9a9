"""What one file may cost: limits that skip a pathological file, never letting it stall or sink a run.

Real collections hold files that are huge, take a parser minutes, or are a
single piece of half a million notes. Each limit (preprocess.py --max-file-mb,
--timeout, --max-notes) skips such a file or piece with its reason in the
manifest; the other files go on. The same limits apply wherever a file is read
for a run (musicgen/cache.py reads every file through read_within_limits).
"""

import contextlib
import dataclasses
import os
import signal

from musicgen import readers


@dataclasses.dataclass(frozen=True)
class FileLimits:
    max_file_mb: float = 64.0  # larger files are not read
    timeout_seconds: float = 60.0  # reading one file may take this long
    max_notes: int = 500_000  # larger pieces are skipped, not read into the corpus

    def refusal(self, piece):
        """Why the readers.RawPiece `piece` is skipped (too many notes), or None."""
        if len(piece.pitches) > self.max_notes:
            return f"{len(piece.pitches):,} notes, more than --max-notes {self.max_notes:,}"
        return None


class FileTimeout(BaseException):
    """A BaseException, like KeyboardInterrupt, so a parser's broad `except Exception` cannot swallow it."""


class OverLimit(Exception):
    """A file over a limit, with its ReadFailure: not kept in the cache, so a rerun with a higher limit reads it."""

    def __init__(self, failure):
        super().__init__(failure.reason)
        self.failure = failure


def read_within_limits(path, selection, limits):
    """readers.read_file(path, selection); OverLimit for a file over the size limit, or one whose reading runs
    past the time limit."""
    try:
        size_mb = os.stat(path).st_size / 2**20
    except OSError as error:
        return [readers.ReadFailure(str(path), "failed", f"cannot read file: {error.strerror or error}")]
    if size_mb > limits.max_file_mb:
        raise OverLimit(readers.ReadFailure(
            str(path), "skipped", f"file is {size_mb:.0f} MB, over the --max-file-mb limit of {limits.max_file_mb:g}"))
    try:
        with time_limit(limits.timeout_seconds):
            return readers.read_file(path, selection)
    except FileTimeout:
        raise OverLimit(readers.ReadFailure(
            str(path), "failed", f"reading took longer than the --timeout of {limits.timeout_seconds:g} s")) from None


@contextlib.contextmanager
def time_limit(seconds):
    """Raise FileTimeout in this (main) thread after `seconds`: reading runs in the main thread of each worker."""
    def expire(signum, frame):
        raise FileTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def refusal_of(path, limits=FileLimits()):
    """Why one music file someone hands over (app.py's uploads) is refused, in a line, or None: what preprocessing
    would skip or fail it for (over a limit, unreadable), or that its first piece has no notes. Reading runs in
    this process's main thread, as the time limit needs."""
    try:
        pieces = read_within_limits(path, readers.TrackSelection(), limits)
    except OverLimit as over:
        return over.failure.reason
    first = next((piece for piece in pieces if isinstance(piece, readers.RawPiece)), None)
    if first is None:
        return pieces[0].reason if pieces else "it holds no music"
    return limits.refusal(first) or (None if len(first.pitches) else "it has no notes")
