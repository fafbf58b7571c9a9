"""Files per second of preprocess.py against a music21-only reader, and what a second worker buys.

    python benchmarks/preprocess_speed.py ../shared/data/nottingham ../shared/data/real-midi

preprocess.py runs as a subprocess (`python preprocess.py --input FILE ... --output <fresh temp folder>
--workers N`), so every run starts with an empty per-file cache and the wall time includes everything a
user waits for: interpreter start, imports, reading, quantizing, encoding and writing. The music21 reader
is the one of Skuldur's Classical-Piano-Composer: `music21.converter.parse` per file (with
forceSource=True, so music21's own pickle cache neither helps nor costs), then for each element of the
flattened notes `str(pitch)` for a note and '.'.join of the normalOrder for a chord. It runs in this
process with music21 already imported (which flatters it), on at most --music21-limit files per folder,
spread evenly over the folder; preprocess.py reads all the files.

Tables (each folder, then all folders together; for "all", music21's time is the per-folder rates
applied to the full file counts):
  1. files/s of preprocess.py (--workers 1) end to end and net of its startup, files/s of the music21
     reader, and the ratios (goal: 20x).
  2. --workers 1 against --workers 2: wall time (best of --repeats, runs interleaved), startup (the same
     command on a single file) and the speed-up of the per-file part (goal: 1.7x), next to a control: the
     speed-up of a CPU-bound Python loop split over two processes, measured in the same interleaved loop
     (on a shared machine it says how much of a second core there was to get).
With --profile auto (the default), a speed-up under the goal is followed by a cProfile (main process,
wall clock) of `python preprocess.py ... --workers 1` and `--workers 2`, broken down by stage: what the
workers do (both passes over the files: reading, the per-file cache, quantizing, counting chords,
encoding) and what only the main process does (writing shards, index, manifest and vocabulary), with the
speed-up Amdahl's law allows for that split.
"""

import argparse
import functools
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIDI_SUFFIXES = (".mid", ".midi")
SPEED_GOAL = 20.0
WORKER_GOAL = 1.7

# cProfile stages: (label, function names, file name ending, top level?). A function that is not found (the
# pipeline changed) shows as "-"; what the top-level stages leave of run() shows as "other".
STAGES = [
    ("first pass per file: read (or cache), quantize, survey", ("_survey",), "preprocessing.py", True),
    ("  parse the file", ("read_file",), "readers.py", False),
    ("  write per-file cache (.npz)", ("_save_cached",), "cache.py", False),
    ("  count chords for the vocabulary", ("count_chords",), "encoding.py", False),
    ("second pass per file: cached notes -> tokens", ("_encode_file",), "preprocessing.py", True),
    ("  encode notes -> tokens", ("encode_notes",), "vocabulary.py", False),
    ("write shards, index, manifest, vocab (main)", ("_write", "write_index", "_write_manifest", "write_vocabulary"),
     ".py", True),
]
CONTROL_LOOP = "sum(i * i for i in range(6_000_000))"  # about half a second of CPU-bound Python


def midi_files(folder, limit=None):
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    return files[:limit] if limit else files


def evenly_spaced(files, count):
    if len(files) <= count:
        return list(files)
    step = len(files) / count
    return [files[int(i * step)] for i in range(count)]


def preprocess_command(files, output, workers):
    command = [sys.executable, "preprocess.py", "--output", str(output), "--workers", str(workers)]
    for path in files:
        command += ["--input", str(Path(path).resolve())]
    return command


def time_preprocess(files, workers, scratch):
    """Wall seconds of one preprocess.py run into a fresh output folder (empty cache)."""
    output = Path(tempfile.mkdtemp(dir=scratch, prefix=f"w{workers}-"))
    started = time.perf_counter()
    done = subprocess.run(preprocess_command(files, output, workers), cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(output, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"error: preprocess.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def time_control(processes):
    """Wall seconds of two units of CPU-bound Python, done by one process or split over `processes`."""
    units = 2 // processes
    code = ";".join([CONTROL_LOOP] * units)
    started = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    for child in children:
        child.wait()
    return time.perf_counter() - started


def best_times(runs, repeats):
    """{key: best wall seconds} for runs {key: callable}, interleaved so that load changes hit all of them."""
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            times[key].append(run())
    return {key: min(values) for key, values in times.items()}


def music21_notes(path):
    """Skuldur's get_notes() for one file: note names and chord normal orders, as strings."""
    from music21 import chord, converter, note

    midi = converter.parse(str(path), forceSource=True)
    notes = []
    for element in midi.flatten().notes:
        if isinstance(element, note.Note):
            notes.append(str(element.pitch))
        elif isinstance(element, chord.Chord):
            notes.append(".".join(str(n) for n in element.normalOrder))
    return notes


def time_music21(files):
    """(seconds per file, files that raised, tokens collected)."""
    failed, tokens = 0, 0
    started = time.perf_counter()
    for path in files:
        try:
            tokens += len(music21_notes(path))
        except Exception:  # noqa: BLE001 - Skuldur's script would stop here; we count it and go on
            failed += 1
    return (time.perf_counter() - started) / len(files), failed, tokens


def startup_file(files, scratch):
    """A file that preprocess.py keeps on its own (a broken or empty one would end the run with an error)."""
    for path in files[:20]:
        output = Path(tempfile.mkdtemp(dir=scratch, prefix="probe-"))
        done = subprocess.run(preprocess_command([path], output, 1), cwd=ROOT, capture_output=True, text=True)
        shutil.rmtree(output, ignore_errors=True)
        if done.returncode == 0:
            return path
    sys.exit("error: preprocess.py failed on each of the first 20 files alone")


def profile_stages(files, workers, scratch):
    """cProfile (wall clock, main process only) of preprocess.py on `files`: ({label: seconds}, project top 15)."""
    output = Path(tempfile.mkdtemp(dir=scratch, prefix="profile-"))
    profile = Path(scratch) / f"preprocess-w{workers}.prof"
    command = preprocess_command(files, output, workers)
    command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    shutil.rmtree(output, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"error: profiled preprocess.py failed:\n{done.stderr[-2000:]}")
    loaded = pstats.Stats(str(profile))
    stats = loaded.stats  # {(file, line, name): (calls, primitive calls, tottime, cumtime, callers)}

    def cumulative(names, suffix):
        found = [value[3] for (filename, _, name), value in stats.items()
                 if name in names and filename.endswith(suffix) and filename.startswith(str(ROOT))]
        return sum(found) if found else None

    total, run = loaded.total_tt, cumulative(("run",), "preprocessing.py")
    rows = {"everything (python preprocess.py)": total,
            "  startup: interpreter, imports, arguments": total - run if run else None,
            "  preprocessing.run()": run}
    accounted = 0.0
    for label, names, suffix, top in STAGES:
        rows["    " + label] = seconds = cumulative(names, suffix)
        accounted += seconds if top and seconds else 0.0
    rows["    other (pool start, waiting for workers, manifest rows, loops in run)"] = run - accounted if run else None
    project = sorted(((value[3], f"{Path(filename).relative_to(ROOT)}:{name}")
                      for (filename, _, name), value in stats.items()
                      if filename.startswith(str(ROOT)) and name != "<module>"), reverse=True)
    return rows, project[:15]


def print_profile(files, workers, scratch):
    profiles = {count: profile_stages(files, count, scratch) for count in (1, workers)}
    print(f"\ncProfile of `python preprocess.py --input <{len(files)} files> --workers N`, main process, wall-clock "
          "cumulative seconds (profiling slows Python code several-fold: compare shares, not seconds)")
    print(f"{'stage':<64} " + " ".join(f"{f'w{count} s':>7} {'share':>6}" for count in profiles))
    for label in profiles[1][0]:
        cells = []
        for rows, _ in profiles.values():
            seconds, total = rows[label], rows["everything (python preprocess.py)"]
            cells.append(f"{'-':>7} {'':>6}" if seconds is None else f"{seconds:>7.2f} {100 * seconds / total:>5.1f}%")
        print(f"{label:<64} " + " ".join(cells))
    rows = profiles[1][0]
    total = rows["everything (python preprocess.py)"]
    parallel = sum(rows["    " + label] or 0.0 for label, _, suffix, top in STAGES if top and "main" not in label)
    if total and parallel:
        serial = total - parallel
        print(f"The per-file passes run in the workers: {parallel:.2f} s of {total:.2f} s with --workers 1 "
              f"({100 * parallel / total:.0f}%). Amdahl's bound with {workers} workers: "
              f"{total / (serial + parallel / workers):.2f}x; with unlimited workers: {total / serial:.2f}x "
              "(pool start and result transfer not counted).")
    print("\nProject functions by cumulative seconds, --workers 1:")
    for seconds, name in profiles[1][1]:
        print(f"  {seconds:8.2f}  {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="folders of MIDI files, read recursively")
    parser.add_argument("--limit", type=int, help="at most this many files from each folder (default: all)")
    parser.add_argument("--music21-limit", type=int, default=100,
                        help="files per folder read by music21, spread evenly over the folder (default: 100)")
    parser.add_argument("--workers", type=int, default=2, help="worker count compared with 1 (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best counts (default: 3)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile preprocess.py by stage: auto = when the worker goal is missed (default)")
    args = parser.parse_args()
    groups = {}
    for folder in args.folders:
        files = midi_files(folder, args.limit)
        if not files:
            sys.exit(f"error: no MIDI files in {folder}")
        groups[str(folder)] = files
    if len(groups) > 1:
        groups["all"] = [path for files in list(groups.values()) for path in files]
    warnings.filterwarnings("ignore")
    import music21  # noqa: F401 - imported before any timing, so its import time is not counted

    scratch = Path(tempfile.mkdtemp(prefix="preprocess-speed-"))
    try:
        single = startup_file(groups[str(args.folders[0])], scratch)
        worker_counts = (1, args.workers)
        results = {}
        for name, files in groups.items():
            runs = {(kind, workers): functools.partial(time_preprocess, [single] if kind == "startup" else files,
                                                       workers, scratch)
                    for kind in ("startup", "all") for workers in worker_counts}
            runs.update({("control", 1): functools.partial(time_control, 1),
                         ("control", 2): functools.partial(time_control, 2)})
            best = best_times(runs, args.repeats)
            walls = {workers: best["all", workers] for workers in worker_counts}
            startup = {workers: best["startup", workers] for workers in worker_counts}
            if name == "all":
                per_file = sum(results[str(folder)]["m21_per_file"] * len(groups[str(folder)])
                               for folder in args.folders) / len(files)
                m21 = dict(m21_files=sum(results[str(f)]["m21_files"] for f in args.folders), m21_per_file=per_file,
                           m21_failed=sum(results[str(f)]["m21_failed"] for f in args.folders))
            else:
                subset = evenly_spaced(files, args.music21_limit)
                per_file, failed, _ = time_music21(subset)
                m21 = dict(m21_files=len(subset), m21_per_file=per_file, m21_failed=failed)
            control = best["control", 1] / best["control", 2]
            results[name] = dict(files=len(files), walls=walls, startup=startup, control=control, **m21)
            print(f"measured {name}: {len(files)} files", file=sys.stderr)
        report(args, results, single, worker_counts, groups, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(args, results, single, worker_counts, groups, scratch):
    one, many = worker_counts
    print(f"\nstartup = `preprocess.py` on one file ({single.name}) with the same --workers, best of {args.repeats}, "
          "measured interleaved with each input's runs; net = wall - startup")
    print("\n1. preprocess.py (--workers 1, all files) against the music21 reader (subset), files per second")
    print(f"{'input':<28} {'files':>6} {'ours f/s':>9} {'ours net f/s':>12} {'m21 files':>9} {'m21 f/s':>8} "
          f"{'x m21':>7} {'x m21 net':>9}")
    for name, r in results.items():
        ours = r["files"] / r["walls"][one]
        net = (r["files"] - 1) / max(r["walls"][one] - r["startup"][one], 1e-9)
        m21 = 1 / r["m21_per_file"]
        m21_files = f"{r['m21_files']}" + (f"({r['m21_failed']}!)" if r["m21_failed"] else "")
        print(f"{name[-28:]:<28} {r['files']:>6} {ours:>9.1f} {net:>12.1f} {m21_files:>9} {m21:>8.2f} "
              f"{ours / m21:>7.1f} {net / m21:>9.1f}")
    print(f"   goal: at least {SPEED_GOAL:g}x the music21 reader end to end "
          + ("- met" if all(r["files"] / r["walls"][one] * r["m21_per_file"] >= SPEED_GOAL for r in results.values())
             else "- NOT met on every input"))
    print("   (n!) = n of the music21 files raised an exception (counted, timed, and skipped)")

    print(f"\n2. preprocess.py --workers {one} against --workers {many}: wall seconds, best of {args.repeats}")
    print(f"{'input':<28} {'files':>6} {f'w{one} s':>7} {f'w{many} s':>7} {'wall x':>7} {f'start{one} s':>8} "
          f"{f'start{many} s':>8} {f'w{one} net s':>9} {f'w{many} net s':>9} {'per-file x':>10} {'CPU 1->2 x':>10}")
    speedups = []
    for name, r in results.items():
        w1, w2 = r["walls"][one], r["walls"][many]
        s1, s2 = r["startup"][one], r["startup"][many]
        n1, n2 = w1 - s1, w2 - s2
        speedups.append(n1 / n2)
        print(f"{name[-28:]:<28} {r['files']:>6} {w1:>7.2f} {w2:>7.2f} {w1 / w2:>7.2f} {s1:>8.2f} {s2:>8.2f} "
              f"{n1:>9.2f} {n2:>9.2f} {n1 / n2:>10.2f} {r['control']:>10.2f}")
    print(f"   goal: at least {WORKER_GOAL:g}x per file (net) " + ("- met" if min(speedups) >= WORKER_GOAL else "- NOT met"))
    print("   CPU 1->2 x: the same CPU-bound Python loop in one process against split over two, measured in the same"
          " interleaved loop: what a second process could get from this machine at that time (ideal 2.00)")

    if args.profile == "always" or (args.profile == "auto" and min(speedups) < WORKER_GOAL):
        largest = max((name for name in results if name != "all"), key=lambda n: results[n]["files"])
        print_profile(groups.get("all", groups[largest]), many, scratch)


if __name__ == "__main__":
    main()
