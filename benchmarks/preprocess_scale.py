"""preprocess.py on thousands of distinct MIDI files, against the bare parse of the same files, in one run.

    python benchmarks/preprocess_scale.py --files 5000

Makes a corpus of --files distinct MIDI files in a temporary folder (removed afterwards, never committed)
from the shared MIDI files (../shared/data: the Nottingham tunes, the piano performances and the multitrack
songs): copy k of each source is transposed by TRANSPOSITIONS[k % 9] semitones and played at
STRETCHES[k // 9] times its tempo, so every file differs from the others in its notes or its timing. Then,
on the same files:

  1. symusic's bare parse (`symusic.Score(path)` per file, in this process): the reader's limit.
  2. `python preprocess.py --input <folder> --workers N` for N = 1 and --workers, each into a fresh output
     folder (an empty cache: every file is really read), best of --repeats, interleaved: files per second end
     to end and net of start-up (the same command on one file), and the ratio to the bare parse (goal: at
     least 0.10 with one worker); the speed-up of the second worker, net (goal: at least 1.7).
  3. Peak memory (the largest resident set of preprocess.py and its workers) on the first quarter, half and
     all of the corpus, with one worker: it must not grow with the number of files.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import symusic

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SOURCES = ("nottingham", "real-midi/piano-performance", "real-midi/pop-multitrack")
TRANSPOSITIONS = (0, 1, -1, 2, -2, 3, -3, 4, -4)
STRETCHES = (1.0, 0.9, 1.1, 0.8, 1.25)
RATIO_GOAL, WORKER_GOAL = 0.10, 1.7
MEMORY_PROBE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def source_files(folders):
    files = [path for folder in folders for path in sorted((SHARED / folder).rglob("*.mid"))]
    if not files:
        sys.exit(f"error: no MIDI files under {SHARED} (see its README)")
    return files


def make_corpus(folder, count, folders):
    """`count` distinct MIDI files in `folder`, made from the shared ones under `folders`; returns their paths."""
    sources = source_files(folders)
    if count > len(sources) * len(TRANSPOSITIONS) * len(STRETCHES):
        sys.exit(f"error: at most {len(sources) * len(TRANSPOSITIONS) * len(STRETCHES)} distinct files can be made")
    scores = [symusic.Score(str(path)) for path in sources]
    paths = []
    for index in range(count):
        copy, source = divmod(index, len(sources))
        semitones, stretch = TRANSPOSITIONS[copy % len(TRANSPOSITIONS)], STRETCHES[copy // len(TRANSPOSITIONS)]
        score = scores[source].shift_pitch(semitones)
        tempos = list(score.tempos) or [symusic.Tempo(0, 120.0)]
        score.tempos.clear()
        for tempo in tempos:
            score.tempos.append(symusic.Tempo(tempo.time, tempo.qpm * stretch))
        path = folder / f"{sources[source].stem}-t{semitones:+d}-s{stretch:g}-{index}.mid"
        score.dump_midi(str(path))
        paths.append(path)
    return paths


def bare_parse_rate(paths):
    started = time.perf_counter()
    notes = sum(symusic.Score(str(path)).note_num() for path in paths)
    return len(paths) / (time.perf_counter() - started), notes


def preprocess_command(inputs, output, workers):
    command = [sys.executable, "preprocess.py", "--output", str(output), "--workers", str(workers)]
    for path in inputs:
        command += ["--input", str(path)]
    return command


def run_preprocess(inputs, workers, scratch, measure_memory=False):
    """(wall seconds, peak resident kilobytes or None) of preprocess.py into a fresh output folder."""
    output = Path(tempfile.mkdtemp(dir=scratch, prefix=f"w{workers}-"))
    command = preprocess_command(inputs, output, workers)
    if measure_memory:
        command = [sys.executable, "-c", MEMORY_PROBE] + command
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(output, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"error: preprocess.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, int(done.stdout.split()[-1]) if measure_memory else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="distinct MIDI files to make (default: 5000)")
    parser.add_argument("--workers", type=int, default=2, help="worker count compared with 1 (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best counts (default: 3)")
    parser.add_argument("--sources", nargs="+", default=SOURCES, metavar="FOLDER",
                        help=f"folders under ../shared/data to make the files from (default: {' '.join(SOURCES)})")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="preprocess-scale-"))
    try:
        corpus = scratch / "corpus"
        corpus.mkdir()
        paths = make_corpus(corpus, args.files, args.sources)
        one_file = scratch / "one"
        one_file.mkdir()
        shutil.copy(paths[0], one_file)
        counts = (1, args.workers)
        times = {key: [] for key in [("bare", 0)] + [(kind, n) for kind in ("all", "startup") for n in counts]}
        notes = 0
        for _ in range(args.repeats):
            rate, notes = bare_parse_rate(paths)
            times["bare", 0].append(len(paths) / rate)
            for workers in counts:
                times["all", workers].append(run_preprocess([corpus], workers, scratch)[0])
                times["startup", workers].append(run_preprocess([one_file], workers, scratch)[0])
        best = {key: min(values) for key, values in times.items()}
        memory = {}
        for share in (4, 2, 1):
            subset = scratch / f"subset-{share}"
            subset.mkdir()
            for path in paths[: len(paths) // share]:
                (subset / path.name).symlink_to(path)
            memory[len(paths) // share] = run_preprocess([subset], 1, scratch, measure_memory=True)[1]
        report(args, len(paths), notes, best, counts, memory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(args, files, notes, best, counts, memory):
    bare = files / best["bare", 0]
    print(f"{files} distinct MIDI files from {', '.join(args.sources)}, {notes:,} notes; best of {args.repeats} interleaved runs; "
          "net = wall - start-up (the same command on one file)\n")
    print("| reader | wall s | files/s | net files/s | of the bare parse (net) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| symusic's bare parse | {best['bare', 0]:.2f} | {bare:,.0f} | | 1 |")
    net = {}
    for workers in counts:
        wall, startup = best["all", workers], best["startup", workers]
        net[workers] = (files - 1) / max(wall - startup, 1e-9)
        print(f"| preprocess.py --workers {workers} | {wall:.2f} | {files / wall:,.0f} | {net[workers]:,.0f} | "
              f"{net[workers] / bare:.3f} |")
    speedup = net[counts[-1]] / net[1]
    print(f"\nwith one worker, {net[1] / bare:.3f} of the bare parse (goal at least {RATIO_GOAL}): "
          + ("met" if net[1] / bare >= RATIO_GOAL else "NOT met"))
    print(f"--workers {counts[-1]} against 1, net: {speedup:.2f}x (goal at least {WORKER_GOAL}): "
          + ("met" if speedup >= WORKER_GOAL else "NOT met"))
    print("\n| files | peak memory, --workers 1 (MB) |")
    print("|---:|---:|")
    for count, kilobytes in sorted(memory.items()):
        print(f"| {count} | {kilobytes / 1024:.0f} |")


if __name__ == "__main__":
    main()
