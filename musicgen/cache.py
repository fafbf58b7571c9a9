"""The cache of files read: each file's pieces as read, kept beside the output so a rerun reads no slow file twice.

preprocess.py reads every file twice (once to survey the corpus, once to encode
it) and again on a rerun after an interruption. An ABC, MusicXML or Humdrum file,
which music21 reads slowly, is read once: each later reading comes from
`<output>/.cache/<key>.npz`, where the key holds the file's path, size and
modification time and the track selection, so a changed file or selection is read
afresh. A MIDI file is read again instead: symusic reads one in about 0.1 ms, three
times quicker than its cache entry loads. NumPy arrays and JSON only, never pickle.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from musicgen import readers
from musicgen.files import atomic_path
from musicgen.limits import OverLimit, read_within_limits

CACHE_FOLDER = ".cache"
# 2: the sustain pedal applied when reading MIDI; 3: velocities, programs, tempo maps; 4: chord symbols; 5: meters
_CACHE_VERSION = 5


def read_cached(path, selection, cache, limits):
    """The pieces of one file (readers.RawPiece or ReadFailure), read within `limits`, or what an earlier run
    read from the unchanged file into the folder `cache` (for files other than MIDI)."""
    cache_file = None
    if os.path.splitext(path)[1].lower() not in readers.MIDI_SUFFIXES:
        try:
            cache_file = Path(cache) / f"{_cache_key(path, selection)}.npz"
        except OSError as error:
            return [readers.ReadFailure(str(path), "failed", f"cannot read file: {error.strerror or error}")]
    if cache_file is not None and cache_file.exists():
        try:
            return _load_cached(cache_file)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is read again from the source
    try:
        results = read_within_limits(path, selection, limits)
    except OverLimit as over:
        return [over.failure]
    if cache_file is not None:
        _save_cached(cache_file, results)
    return results


def _cache_key(path, selection):
    stat = os.stat(path)
    programs = sorted(selection.programs) if selection.programs else None
    identity = (f"{_CACHE_VERSION}|{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{selection.keep_drums}|"
                f"{programs}|{selection.sustain_pedal}")
    return hashlib.sha1(identity.encode()).hexdigest()


def _save_cached(cache_file, results):
    meta, arrays = [], {}
    for i, result in enumerate(results):
        if isinstance(result, readers.RawPiece):
            meta.append({"source": result.source, "tempo_bpm": result.tempo_bpm, "time_signature": result.time_signature,
                         "velocities": result.velocities is not None})
            velocities = result.velocities if result.velocities is not None else np.zeros(len(result.pitches))
            arrays[f"notes_{i}"] = np.stack([result.onsets, result.durations, result.pitches, velocities,
                                             result.programs], axis=1).astype(np.float64)
            arrays[f"tempo_{i}"] = result.tempo_changes
            arrays[f"meters_{i}"] = result.meter_changes
            arrays[f"symbols_{i}"] = np.column_stack([result.chord_onsets, result.chord_codes]).astype(np.float64)
        else:
            meta.append(dataclasses.asdict(result))
    with atomic_path(cache_file) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def _load_cached(cache_file):
    with np.load(cache_file, allow_pickle=False) as arrays:
        results = []
        for i, meta in enumerate(json.loads(str(arrays["meta"]))):
            if "reason" in meta:
                results.append(readers.ReadFailure(**meta))
            else:
                notes, symbols = arrays[f"notes_{i}"], arrays[f"symbols_{i}"].reshape(-1, 2)
                velocities = notes[:, 3].astype(np.int64) if meta.pop("velocities") else None
                results.append(readers.RawPiece(onsets=notes[:, 0], durations=notes[:, 1],
                                                pitches=notes[:, 2].astype(np.int64), velocities=velocities,
                                                programs=notes[:, 4].astype(np.int64),
                                                tempo_changes=arrays[f"tempo_{i}"],
                                                meter_changes=arrays[f"meters_{i}"], chord_onsets=symbols[:, 0],
                                                chord_codes=symbols[:, 1].astype(np.int64), **meta))
        return results
