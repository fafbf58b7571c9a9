"""Peak memory of preprocess.py and of one training epoch on synthetic corpora of 5,000 and 20,000 MIDI files.

    python benchmarks/memory.py --workdir /tmp/musicgen-memory

The corpora are made once with pretty_midi (a seeded melody over chords, 16 to 64 bars, a few hundred notes
per file) in a process pool and kept under --workdir/midi/ in folders of 1,000 files, so a rerun reuses
them and the smaller corpus is the first folders of the larger one. For each size the script runs, as
subprocesses and one after the other:

    python preprocess.py --input <its folders> --output <workdir>/processed-N --workers 2   (fresh output)
    python train.py --model lstm --data <workdir>/processed-N --epochs 1 --units 32 --embedding-dim 16
                    --layers 1 --batch-size 64 --checkpoints <workdir>/checkpoints --restart

How memory is measured: each command runs in its own child process, and os.wait4() returns its rusage,
whose ru_maxrss is the exact peak resident set of the largest single process among the child and the
descendants it waited for (the main process; preprocess.py's workers are smaller). Besides, /proc is polled
every 50 ms for the sum of VmRSS over the whole process tree (main process plus pool workers), which can
miss a short spike. Inside the child a sampling thread records the main process's RSS every 50 ms together
with the project function running at that moment, so the growth can be assigned to a stage (the thread and
its samples cost a few MiB, the same at every corpus size; the GIL switch interval is set to 0.2 ms so that
the samples are not biased towards code that happens to release the GIL, which may cost a little speed but
no memory). The commands are started through that small wrapper (`python -c <probe> preprocess.py ...`),
which runs the script as `python preprocess.py` would. The seconds in the tables are wall time on a shared
CPU: rough.

The requirement checked: from 5k to 20k files, peak memory may grow by no more than the token arrays do
(tokens x 4 bytes). When a command grows more, `--tracemalloc auto` (the default) reruns it on the smaller
corpus under tracemalloc and prints the allocation sites that hold the most memory at its traced peak.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_VERSION = "memory-corpus-v1"
FILES_PER_FOLDER = 1000
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20
SLOW_EPOCH_SECONDS = 300

# Runs inside the measured child: samples RSS and the running project function, optionally tracemalloc.
PROBE = r"""
import atexit, json, os, runpy, sys, threading, time
sys.setswitchinterval(0.0002)  # the sampler gets the GIL within 0.2 ms, not at the next call that releases it
root, samples_path, trace_top = os.environ["MEM_ROOT"], os.environ["MEM_SAMPLES"], int(os.environ.get("MEM_TRACE", "0"))
page, main_id, samples, started = os.sysconf("SC_PAGE_SIZE"), threading.get_ident(), [], time.perf_counter()
seen = []  # non-empty once project code has run
script = os.path.abspath(sys.argv[1])
best = {"size": 0, "snapshot": None}
if trace_top:
    import tracemalloc
    tracemalloc.start(1)

def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page

def label():
    frame, chain = sys._current_frames().get(main_id), []
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(root) and "/benchmarks/" not in name and not name.endswith("errors.py"):
            chain.append(frame)
        frame = frame.f_back
    chain = chain[::-1]
    inner = [f for f in chain if f.f_code.co_filename != script]  # the script's own frames only when alone
    chain = (inner or chain[-1:])[:2]
    if not chain:
        return "(after the script, at exit)" if seen else "(interpreter start, library imports)"
    seen[:] = [True]
    text = " > ".join(os.path.splitext(os.path.basename(f.f_code.co_filename))[0] + "." + f.f_code.co_name for f in chain)
    return f"{text}@{chain[-1].f_lineno}" if len(chain) == 1 else text

def sample():
    while True:
        samples.append((time.perf_counter() - started, rss(), label()))
        if trace_top:
            current = tracemalloc.get_traced_memory()[0]
            if current > 1.1 * best["size"] + 2**20:
                best["size"], best["snapshot"] = current, tracemalloc.take_snapshot()
        time.sleep(0.05)

def dump():
    out = {"samples": samples}
    if trace_top and best["snapshot"] is not None:
        stats = best["snapshot"].statistics("lineno")[:trace_top]
        out["traced_peak"] = best["size"]
        out["top"] = [(str(s.traceback[0]), s.size, s.count) for s in stats]
    with open(samples_path, "w") as handle:
        json.dump(out, handle)

atexit.register(dump)
threading.Thread(target=sample, daemon=True).start()
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


# ---------------------------------------------------------------- synthetic corpus

MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
PROGRESSION_DEGREES, PROGRESSION_WEIGHTS = (0, 3, 4, 5, 1, 2), (0.3, 0.2, 0.25, 0.12, 0.08, 0.05)


def synthetic_piece(index):
    """A pretty_midi.PrettyMIDI: a melody (random walk on a scale) over one or two chords per bar."""
    import pretty_midi

    rng = np.random.default_rng([20240611, index])
    scale = MAJOR if rng.random() < 0.6 else MINOR
    tonic = int(rng.integers(0, 12))
    beats_per_bar = int(rng.choice([3, 4], p=[0.3, 0.7]))
    bars = int(rng.integers(16, 65))
    bpm = float(rng.uniform(70, 160))
    seconds = 60.0 / bpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(beats_per_bar, 4, 0))
    melody = pretty_midi.Instrument(program=int(rng.choice([0, 40, 56, 73])))
    chords = pretty_midi.Instrument(program=int(rng.choice([0, 4, 24, 48])))

    def scale_pitch(step, base):
        return base + tonic + 12 * (step // 7) + scale[step % 7]

    def add(instrument, pitch, start, length, velocity):
        instrument.notes.append(pretty_midi.Note(velocity, int(pitch), start * seconds, (start + length) * seconds))

    style = rng.choice(["block", "oom-pah", "half-bars"])
    for bar in range(bars):
        for half in (0, 1) if style == "half-bars" else (0,):
            degree = int(rng.choice(PROGRESSION_DEGREES, p=PROGRESSION_WEIGHTS)) if bar or half else 0
            start = bar * beats_per_bar + half * beats_per_bar / 2
            triad = [scale_pitch(degree + k, 48) for k in (0, 2, 4)]
            if style == "oom-pah":
                add(chords, triad[0] - 12, start, 1, 70)
                for beat in range(1, beats_per_bar):
                    for pitch in triad:
                        add(chords, pitch, start + beat, 1, 60)
            else:
                length = beats_per_bar / 2 if style == "half-bars" else beats_per_bar
                for pitch in triad:
                    add(chords, pitch, start, length, 60)
    step, time_ = 7 + int(rng.integers(0, 5)), 0.0
    end = bars * beats_per_bar
    while time_ < end:
        length = min(float(rng.choice([0.5, 1, 1, 1, 1.5, 2, 0.25], p=[0.25, 0.3, 0.1, 0.1, 0.1, 0.1, 0.05])), end - time_)
        if rng.random() > 0.08:
            step = int(np.clip(step + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, 14))
            add(melody, scale_pitch(step, 60), time_, length, int(rng.integers(70, 110)))
        time_ += length
    midi.instruments += [melody, chords]
    return midi


def _write_folder(job):
    folder, first, count = job
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    notes = written = 0
    for index in range(first, first + count):
        path = folder / f"{index:06d}.mid"
        if path.exists():
            continue
        midi = synthetic_piece(index)
        temporary = path.with_suffix(".tmp")
        midi.write(str(temporary))
        temporary.rename(path)  # an interrupted run never leaves a half-written .mid behind
        notes += sum(len(i.notes) for i in midi.instruments)
        written += 1
    return written, notes


def make_corpus(workdir, files, workers):
    """Folders of synthetic MIDI files under workdir/midi holding at least `files` files; returns the folders."""
    midi = Path(workdir) / "midi"
    marker = midi / "GENERATOR"
    if marker.exists() and marker.read_text().strip() != GENERATOR_VERSION:
        shutil.rmtree(midi)  # made by another version of the generator
    midi.mkdir(parents=True, exist_ok=True)
    marker.write_text(GENERATOR_VERSION + "\n")
    folders = [midi / f"part-{i:03d}" for i in range((files + FILES_PER_FOLDER - 1) // FILES_PER_FOLDER)]
    jobs = [(str(folder), i * FILES_PER_FOLDER + first, min(100, FILES_PER_FOLDER - first))
            for i, folder in enumerate(folders) for first in range(0, FILES_PER_FOLDER, 100)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_write_folder, jobs))
    written, notes = (sum(column) for column in zip(*done))
    if written:
        print(f"wrote {written} synthetic MIDI files ({notes / written:.0f} notes each on average) "
              f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return folders


# ---------------------------------------------------------------- measuring a command


def _children_table():
    """{parent pid: [child pids]} from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                table.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                pass
    return table


def _rss(pid):
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


def measure(command, log_path, samples_path, trace_top=0, timeout=None):
    """Run `command` (a python script and its arguments) through the probe; returns what was measured.

    After `timeout` seconds the command gets SIGINT (Ctrl-C); train.py then exits with code 130.
    """
    environment = dict(os.environ, MEM_ROOT=str(ROOT), MEM_SAMPLES=str(samples_path), MEM_TRACE=str(trace_top),
                       TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "w") as log:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", PROBE, *command], cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT, env=environment)
        tree_peak = main_peak = processes = 0
        interrupted = False
        while True:
            if timeout and not interrupted and time.perf_counter() - started > timeout:
                child.send_signal(signal.SIGINT)
                interrupted = True
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            table, tree = _children_table(), [child.pid]
            for member in tree:
                tree.extend(table.get(member, []))
            sizes = [_rss(member) for member in tree]
            tree_peak, main_peak = max(tree_peak, sum(sizes)), max(main_peak, sizes[0])
            processes = max(processes, len(tree))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 and not (interrupted and child.returncode == 130):
        sys.exit(f"error: {' '.join(command[:2])} failed (exit {child.returncode}); see {log_path}:\n"
                 + Path(log_path).read_text()[-2000:])
    probe = json.loads(Path(samples_path).read_text())
    return dict(seconds=seconds, interrupted=interrupted, exact_peak=usage.ru_maxrss * 1024, tree_peak=tree_peak, polled_main_peak=main_peak,
                processes=processes, samples=probe["samples"], top=probe.get("top"), traced_peak=probe.get("traced_peak"))


def token_arrays(folder):
    """(token count, bytes of every split file on disk) of preprocess.py's output, sharded or not."""
    tokens, disk = 0, 0
    for path in Path(folder).rglob("*.npz"):
        if ".cache" in path.parts:
            continue
        disk += path.stat().st_size
        with np.load(path, allow_pickle=False) as arrays:
            tokens += sum(arrays[key].size for key in arrays.files if "tokens" in key)
    return tokens, disk


def stages(samples):
    """{stage label: (seconds, RSS when first seen, highest RSS)}, in order of first appearance."""
    table = {}
    for index, (at, rss, label) in enumerate(samples):
        following = samples[index + 1][0] if index + 1 < len(samples) else at + 0.05
        seconds, first, peak = table.get(label, (0.0, rss, 0))
        table[label] = (seconds + following - at, first, max(peak, rss))
    return table


# ---------------------------------------------------------------- the benchmark


def commands(size, folders, workdir, args):
    output = Path(workdir) / f"processed-{size}"
    preprocess = ["preprocess.py", "--output", str(output), "--workers", str(args.preprocess_workers)]
    for folder in folders:
        preprocess += ["--input", str(folder)]
    train = ["train.py", "--model", "lstm", "--data", str(output), "--epochs", "1", "--units", "32",
             "--embedding-dim", "16", "--layers", "1", "--batch-size", str(args.batch_size),
             "--checkpoints", str(Path(workdir) / "checkpoints"), "--run-name", f"memory-{size}", "--restart"]
    return output, {"preprocess": preprocess, "train": train}


def mib(value):
    return value / MIB


def print_stage_growth(name, small, large, sizes):
    a, b = stages(small["samples"]), stages(large["samples"])
    print(f"\n{name}: main-process RSS by stage (sampled every 50 ms), {sizes[0]:,} -> {sizes[1]:,} files")
    print(f"{'stage: the two outermost project functions running (@line when only one)':<90} {'s':>6} {'s':>6} "
          f"{'peak MiB':>9} {'peak MiB':>9} {'growth':>8}")
    shown = [label for label in b if b[label][0] >= 0.5 or (label in a and b[label][2] - a[label][2] > 5 * MIB)]
    for label in shown:
        seconds_b, _, peak_b = b[label]
        seconds_a, _, peak_a = a.get(label, (0.0, 0, 0))
        growth = f"{mib(peak_b - peak_a):+8.1f}" if label in a else "       -"
        print(f"{label[-90:]:<90} {seconds_a:>6.1f} {seconds_b:>6.1f} {mib(peak_a):>9.1f} {mib(peak_b):>9.1f} {growth}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/musicgen-memory"),
                        help="synthetic corpora, outputs and logs; corpora are reused (default: /tmp/musicgen-memory)")
    parser.add_argument("--sizes", default="5000,20000", help="corpus sizes in files (default: 5000,20000)")
    parser.add_argument("--generate-workers", type=int, default=os.cpu_count(),
                        help="processes writing the synthetic files (default: one per CPU)")
    parser.add_argument("--preprocess-workers", type=int, default=2, help="preprocess.py --workers (default: 2)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="train.py --batch-size (default: 64; memory grows with it whatever the corpus size: the "
                             "logits alone are batch x seq-len x vocabulary floats, 38 MiB at 64 x 128 x 1221)")
    parser.add_argument("--train-timeout", type=float, metavar="SECONDS",
                        help="interrupt train.py (SIGINT, as Ctrl-C) after this long: a partial epoch, no validation")
    parser.add_argument("--skip-train", action="store_true", help="measure preprocess.py only")
    parser.add_argument("--tracemalloc", choices=("auto", "always", "never"), default="auto",
                        help="allocation sites at the traced peak, on the smallest corpus: auto = for a command "
                             "that grows more than its token arrays (default)")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    workdir = args.workdir.resolve()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    all_folders = make_corpus(workdir, max(sizes), args.generate_workers)
    names = ["preprocess"] + ([] if args.skip_train else ["train"])

    results = {}
    for size in sizes:
        folders = all_folders[: (size + FILES_PER_FOLDER - 1) // FILES_PER_FOLDER]
        if size % FILES_PER_FOLDER:
            sys.exit(f"error: sizes must be multiples of {FILES_PER_FOLDER}")
        output, runs = commands(size, folders, workdir, args)
        shutil.rmtree(output, ignore_errors=True)  # an empty per-file cache, as on a first run
        results[size] = {}
        for name in names:
            print(f"running {name} on {size:,} files ...", file=sys.stderr)
            results[size][name] = measure(runs[name], logs / f"{name}-{size}.log", logs / f"{name}-{size}.json",
                                          timeout=args.train_timeout if name == "train" else None)
        results[size]["tokens"], results[size]["disk"] = token_arrays(output)
        train_log = (logs / f"train-{size}.log").read_text() if not args.skip_train else ""
        results[size]["train_lines"] = [line for line in train_log.splitlines() if "parameters" in line or "step" in line][-2:]

    print(f"\nPeak resident memory (MiB). exact = ru_maxrss of the largest process (wait4); tree = polled sum over "
          f"the process tree (preprocess.py --workers {args.preprocess_workers}); tokens = token ids x 4 bytes")
    header = f"{'files':>7} {'tokens':>11} {'tok MiB':>8} {'npz MiB':>8}"
    for name in names:
        header += f" {name[:5] + ' exact':>11} {name[:5] + ' tree':>10} {name[:5] + ' s':>8}"
    print(header)
    for size in sizes:
        r = results[size]
        line = f"{size:>7,} {r['tokens']:>11,} {mib(4 * r['tokens']):>8.1f} {mib(r['disk']):>8.1f}"
        for name in names:
            m = r[name]
            line += f" {mib(m['exact_peak']):>11.1f} {mib(m['tree_peak']):>10.1f} {m['seconds']:>8.1f}"
        print(line)

    small, large = sizes[0], sizes[-1]
    token_growth = 4 * (results[large]["tokens"] - results[small]["tokens"])
    print(f"\nGrowth {small:,} -> {large:,} files: token arrays +{mib(token_growth):.1f} MiB")
    print(f"{'command':<11} {'peak growth MiB':>16} {'x token growth':>15} {'MiB per 1k files':>17}  verdict")
    over = []
    for name in names:
        growth = results[large][name]["exact_peak"] - results[small][name]["exact_peak"]
        per_thousand = mib(growth) / ((large - small) / 1000)
        verdict = "within the token arrays" if growth <= token_growth else \
            f"EXCEEDS by {mib(growth - token_growth):.1f} MiB"
        if growth > token_growth:
            over.append(name)
        print(f"{name:<11} {mib(growth):>16.1f} {growth / token_growth:>15.2f} {per_thousand:>17.1f}  {verdict}")
    if "train" in names:
        epoch = results[large]["train"]["seconds"]
        partial = results[large]["train"]["interrupted"]
        print(f"train.py wall time with {large:,} files: {epoch:.0f} s "
              + ("(interrupted by --train-timeout: a partial epoch)" if partial else
                 "(one epoch, validation, start-up included)")
              + (f"; over {SLOW_EPOCH_SECONDS} s" if epoch > SLOW_EPOCH_SECONDS else ""))
        for size in sizes:
            for line in results[size]["train_lines"]:
                print(f"  [{size:,}] {line.strip()[:150]}")

    for name in names:
        print_stage_growth(name, results[small][name], results[large][name], (small, large))

    traced = names if args.tracemalloc == "always" else over if args.tracemalloc == "auto" else []
    for name in traced:
        output, runs = commands(small, all_folders[: small // FILES_PER_FOLDER], workdir, args)
        command = runs[name]
        if name == "preprocess":
            shutil.rmtree(output, ignore_errors=True)
            command = command[:command.index("--workers") + 1] + ["1"] + command[command.index("--workers") + 2:]
        print(f"\nrunning {name} on {small:,} files under tracemalloc ...", file=sys.stderr)
        traced_run = measure(command, logs / f"{name}-{small}-tracemalloc.log",
                             logs / f"{name}-{small}-tracemalloc.json", trace_top=15)
        print(f"\n{name} on {small:,} files (workers 1): Python allocations alive at the traced peak "
              f"({mib(traced_run['traced_peak'] or 0):.1f} MiB traced; native memory such as TensorFlow's is not traced). "
              "A site with a steady number of blocks per file holds something for every file at once.")
        print(f"{'MiB':>8} {'KiB/file':>9} {'blocks':>10} {'blocks/file':>11}  allocated at")
        for where, size_bytes, count in traced_run["top"] or []:
            where = where.replace(str(ROOT) + "/", "")
            print(f"{mib(size_bytes):>8.1f} {size_bytes / 1024 / small:>9.2f} {count:>10,} {count / small:>11.2f}  {where}")


if __name__ == "__main__":
    main()
