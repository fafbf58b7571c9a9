"""app.py under load: how soon it answers, 8 people at once against the same 8 one after another, and its memory.

    python benchmarks/app_load.py                          # about two minutes on a 2-core CPU
    python benchmarks/app_load.py --screenshot docs/app.png  # and a picture of the page, from headless Chromium

The server runs as `python app.py` does by default (2 workers, pretrained/styles). Each request uploads its
own small MIDI file as the seed (a different first note each) and asks for --events events through the HTTP
API; every answer must be a MIDI file that begins with its own seed's note, so no request got another's music.
Memory is the resident set of the server and its child processes (the upload reader), sampled every 0.1 s;
rounds of 8 at once are repeated to show whether it grows.
"""

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pretty_midi  # noqa: E402
from app_client import Server, headless_chromium  # noqa: E402

PITCHES = [60, 62, 64, 65, 67, 69, 71, 72]


def tree_rss_mb(pid):
    """The resident memory of process `pid` and its children, in MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue
        if int(fields.get("Pid", -1)) == pid or int(fields.get("PPid", -1)) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


class Peak(threading.Thread):
    """Samples a process tree's memory until stopped; `.peak` is the largest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True
        self.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(0.1)

    def stop(self):
        self.running = False
        self.join()
        return self.peak


def seed_file(pitch, folder):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    part = pretty_midi.Instrument(0)
    part.notes = [pretty_midi.Note(80, pitch + step, i * 0.5, i * 0.5 + 0.5) for i, step in enumerate((0, 4, 7))]
    midi.instruments.append(part)
    path = folder / f"seed-{pitch}.mid"
    midi.write(str(path))
    return path.read_bytes()


def ask(server, pitch, seed, events, answers):
    started = time.perf_counter()
    status, _, body = server.post("/api/generate", [("length", str(events)), ("seed_events", "3")],
                                  [("file", f"seed-{pitch}.mid", seed)])
    first = None
    if status == 200:
        with tempfile.NamedTemporaryFile(suffix=".mid") as written:
            written.write(body)
            written.flush()
            notes = sorted((note.start, note.pitch) for note in pretty_midi.PrettyMIDI(written.name).instruments[0].notes)
            first = notes[0][1] if notes else None
    answers[pitch] = (status, first, time.perf_counter() - started)


def round_of(server, seeds, events, at_once):
    """Seconds for all of `seeds` asked at once (or one after another); fails if any answer is wrong."""
    answers = {}
    started = time.perf_counter()
    threads = [threading.Thread(target=ask, args=(server, pitch, seed, events, answers)) for pitch, seed in seeds.items()]
    for thread in threads:
        thread.start()
        if not at_once:
            thread.join()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    wrong = {pitch: answer for pitch, answer in answers.items() if answer[:2] != (200, pitch)}
    if wrong:
        raise SystemExit(f"wrong answers (status, first pitch, seconds): {wrong}")
    return elapsed, sorted(seconds for _, _, seconds in answers.values())


def screenshot(server, path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = headless_chromium()
    if driver is None:
        raise SystemExit("--screenshot needs Chromium and chromedriver (./install.sh --tests installs them)")
    try:
        driver.get(server.url)
        WebDriverWait(driver, 30).until(lambda d: Select(d.find_element(By.ID, "model")).options)
        Select(driver.find_element(By.CSS_SELECTOR, "select[data-label=style]")).select_by_value("palestrina")
        Select(driver.find_element(By.CSS_SELECTOR, "select[data-label=key]")).select_by_value("D minor")
        Select(driver.find_element(By.ID, "length-kind")).select_by_value("bars")
        driver.find_element(By.ID, "length-value").send_keys("12")
        driver.find_element(By.ID, "random_seed").send_keys("2")
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article img"))
        time.sleep(1)  # the piano roll is drawn once loaded
        driver.set_window_size(1000, driver.execute_script("return document.body.scrollHeight") + 140)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=64, help="events each request asks for (default: 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 8 requests at once (default: 3)")
    parser.add_argument("--screenshot", type=Path, help="also save a picture of the page here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        started = time.perf_counter()
        server = Server(temp, temp / "no-runs")
        print(f"the page answered {time.perf_counter() - started:.1f} s after `python app.py` started")
        try:
            seeds = {pitch: seed_file(pitch, temp) for pitch in PITCHES}
            first, _ = round_of(server, {60: seeds[60]}, args.events, at_once=False)
            print(f"first request (TensorFlow and the model loading meanwhile): {first:.1f} s; "
                  f"memory {tree_rss_mb(server.process.pid):.0f} MB")
            alone, latencies = round_of(server, seeds, args.events, at_once=False)
            print(f"8 requests one after another: {alone:.1f} s (each {latencies[0]:.1f} to {latencies[-1]:.1f} s)")
            for index in range(args.rounds):
                peak = Peak(server.process.pid)
                together, latencies = round_of(server, seeds, args.events, at_once=True)
                print(f"8 requests at once, round {index + 1}: all answered, each with its own seed, in "
                      f"{together:.1f} s ({alone / together:.2f}x the rate one after another; each waited "
                      f"{latencies[0]:.1f} to {latencies[-1]:.1f} s); memory peak {peak.stop():.0f} MB, after "
                      f"{tree_rss_mb(server.process.pid):.0f} MB")
            time.sleep(1)
            print(f"job folders left after the answers: {len(server.job_folders())}")
            if args.screenshot:
                screenshot(server, args.screenshot)
        finally:
            server.stop()
        print(f"folders left after the server stopped: {len(list(temp.glob('musicgen-app-*')))}")


if __name__ == "__main__":
    main()
