"""app.py: the page and its HTTP API, against a real server (and a real browser where Chromium is installed)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pretty_midi
import pytest

from app_client import Server, headless_chromium
from conftest import ROOT, write_tune


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    checkpoints = tmp_path_factory.mktemp("runs") / "checkpoints"
    shutil.copytree(ROOT / "pretrained" / "folk", checkpoints / "my-folk")  # a trained run of the user's
    running = Server(tmp_path_factory.mktemp("jobs"), checkpoints)
    yield running
    running.stop()


def midi_notes(content, tmp_path):
    path = tmp_path / f"{uuid.uuid4().hex}.mid"
    path.write_bytes(content)
    return sorted((note.start, note.pitch) for note in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes)


def test_a_port_in_use_is_refused_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"error: cannot serve on 127.0.0.1:{port}: Address already in use (--port for another)\n"


def test_models_are_the_shipped_ones_then_the_users_runs_with_what_each_knows(server):
    models = {model["name"]: model for model in server.json("/api/models")}
    assert list(models) == ["pretrained/styles", "pretrained/bach", "pretrained/folk", "checkpoints/my-folk"]
    assert set(models["pretrained/styles"]["labels"]) == {"style", "key", "density"}
    assert "palestrina" in models["pretrained/styles"]["labels"]["style"]
    assert models["pretrained/bach"]["labels"] == {} and models["pretrained/bach"]["chords"] == []
    assert models["pretrained/styles"]["chords"] == ["D", "E", "F", "A", "B", "Am"], "the few it saw, named"
    assert {"G", "D7", "C", "Em"} <= set(models["pretrained/folk"]["chords"])


def test_the_readme_curl_example_returns_a_midi_file(server, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("curl ") and ":7860/api/generate" in line)
    subprocess.run(command.replace(":7860", f":{server.port}"), shell=True, cwd=tmp_path, check=True, timeout=300)
    written = tmp_path / re.search(r"-o (\S+)", command).group(1)
    assert written.read_bytes()[:4] == b"MThd"
    assert len(pretty_midi.PrettyMIDI(str(written)).instruments[0].notes) > 0


def test_what_the_command_line_refuses_is_refused_in_its_words_and_the_server_goes_on(server, tmp_path):
    from musicgen.dataset import read_vocabulary
    from musicgen.errors import UserError
    from musicgen.seed import parse_seed

    garbage = os.urandom(4000)
    status, _, body = server.post("/api/generate", files=[("file", "tune.mid", garbage)])
    assert status == 400 and json.loads(body) == {"error": "tune.mid: not a MIDI file (no MThd header)"}
    with pytest.raises(UserError) as cli:
        parse_seed("C4 H9", read_vocabulary(ROOT / "pretrained/styles/vocab.json"))
    status, _, body = server.post("/api/generate", [("seed", "C4 H9"), ("length", "8")])
    assert status == 400 and json.loads(body)["error"] == str(cli.value)
    for fields, error in [([("length", "abc")], "argument --length: invalid int value: 'abc'"),
                          ([("bars", "5"), ("length", "8")], "give one of --length, --bars and --seconds"),
                          ([("seed", " ")], "the seed is empty; write notes like C4"),
                          ([("num_outputs", "9")], "this server writes at most 4 pieces"),
                          ([("model", "../pretrained/bach")], "unknown model '../pretrained/bach'"),
                          ([("output", "/etc/x.mid")], "unknown field 'output'")]:
        status, _, body = server.post("/api/generate", fields)
        assert status == 400 and error in json.loads(body)["error"], (fields, body)
    status, _, body = server.post("/api/generate", files=[("file", "notes.txt", b"C4 E4")])
    assert status == 400 and "not a music file" in json.loads(body)["error"]
    status, headers, body = server.post("/api/generate", [("seed", "D4 F#4 A4"), ("length", "8")])
    assert status == 200 and headers["Content-Type"] == "audio/midi" and body[:4] == b"MThd"


def test_an_upload_is_kept_under_a_name_of_the_servers_and_its_folder_removed(server, tmp_path):
    tune = write_tune(tmp_path / "tune.mid", seed=3).read_bytes()
    name = "../../escaped.mid"
    state = server.finished_job([("length", "8"), ("seed_events", "4")], [("file", name, tune)])
    assert state["state"] == "done", state
    assert "the first 4 events of escaped.mid" in state["lines"][0]
    assert str(server.temp) not in json.dumps(state), "the page never shows the server's own paths"
    assert state["command"].endswith("--seed-midi escaped.mid")
    assert not list(server.temp.parent.rglob("escaped.mid")) and not list(ROOT.rglob("escaped.mid"))
    (job,) = [folder for folder in server.job_folders() if folder.name == state["id"]]
    assert sorted(path.name for path in job.iterdir()) == ["out", "upload.mid"]
    before = {folder.name for folder in server.job_folders()}  # the page's jobs, kept for their downloads
    status, _, _ = server.post("/api/generate", [("length", "4")], [("file", name, tune)])
    assert status == 200
    time.sleep(1)  # the answer's folder goes once the answer is sent
    assert {folder.name for folder in server.job_folders()} == before


def test_a_job_shows_its_progress_and_stops_when_cancelled(server):
    status, _, body = server.post("/api/jobs", [("length", "2000"), ("model", "pretrained/styles")])
    job = json.loads(body)["id"]
    deadline = time.time() + 120  # the model may still be loading
    while time.time() < deadline:
        state = server.json(f"/api/jobs/{job}")
        if state["progress"] and state["progress"]["reached"] >= 8:
            break
        time.sleep(0.1)
    assert state["state"] == "running" and state["progress"]["total"] == 2000
    assert server.json(f"/api/jobs/{job}", "DELETE")["id"] == job
    deadline = time.time() + 30
    while time.time() < deadline:
        state = server.json(f"/api/jobs/{job}")
        if state["state"] != "running":
            break
        time.sleep(0.1)
    assert state["state"] == "cancelled" and state["progress"]["reached"] < 2000 and state["pieces"] == []


def test_a_jobs_files_are_reached_only_by_its_id_and_their_names(server):
    state = server.finished_job([("length", "8")])
    (piece,) = state["pieces"]
    assert set(piece) == {"midi", "wav", "musicxml", "png"}
    assert server.get(piece["midi"])[:4] == b"MThd" and server.get(piece["wav"])[:4] == b"RIFF"
    files = f"/api/jobs/{state['id']}/files/"
    for path in [files + "upload.mid", files + "..%2F..%2Fapp.py", f"/api/jobs/{'x' * 22}/files/"
                 + piece["midi"].rsplit("/", 1)[1]]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            server.get(path)
        assert refused.value.code == 404


def test_eight_people_at_once_are_all_answered_each_with_their_own_music(server, tmp_path):
    seeds = ["C4:4", "D4:4", "E4:4", "F4:4", "G4:4", "A4:4", "B4:4", "C5:4"]
    answers = [None] * len(seeds)

    def ask(index):
        answers[index] = server.post("/api/generate", [("seed", seeds[index]), ("length", "8")])

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(len(seeds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, (status, _, body) in zip(seeds, answers):
        assert status == 200, body
        assert midi_notes(body, tmp_path)[0][1] == pretty_midi.note_name_to_number(seed.split(":")[0])


def test_the_page_offers_a_trained_run_and_harmonizes_with_it(server, tmp_path):
    melody = pretty_midi.PrettyMIDI(initial_tempo=120)
    part = pretty_midi.Instrument(0)
    part.notes = [pretty_midi.Note(90, pitch, i * 0.5, i * 0.5 + 0.5) for i, pitch in enumerate([67, 69, 71, 72])]
    melody.instruments.append(part)
    melody.write(str(tmp_path / "melody.mid"))
    state = server.finished_job([("model", "checkpoints/my-folk"), ("file_use", "harmonize")],
                                [("file", "melody.mid", (tmp_path / "melody.mid").read_bytes())])
    assert state["state"] == "done", state
    assert "the melody of melody.mid (4 notes) harmonized" in state["lines"][0]
    assert state["progress"]["total"] is None, "the melody ends it: the cap is not a length to show"
    assert state["command"].startswith("python generate.py --checkpoint checkpoints/my-folk")


def browser():
    """Headless Chromium driven by Selenium, or skip where either is missing."""
    pytest.importorskip("selenium")
    driver = headless_chromium()
    if driver is None:
        pytest.skip("no Chromium here (./install.sh --tests installs it where apt-get is available)")
    return driver


@pytest.fixture
def page(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser()
    driver.get(server.url)
    WebDriverWait(driver, 30).until(lambda d: Select(d.find_element(By.ID, "model")).options)
    yield driver
    driver.quit()


def test_the_page_makes_a_piece_to_play_and_download(page, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    Select(page.find_element(By.CSS_SELECTOR, "select[data-label=style]")).select_by_value("palestrina")
    Select(page.find_element(By.ID, "length-kind")).select_by_value("bars")
    page.find_element(By.ID, "length-value").send_keys("4")
    page.find_element(By.ID, "bpm").send_keys("90")
    assert not page.find_element(By.ID, "instruments").is_displayed(), "the model keeps no instruments"
    page.find_element(By.ID, "generate").click()
    WebDriverWait(page, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "audio[src]"))
    audio = page.find_element(By.CSS_SELECTOR, "audio").get_attribute("src")
    download = page.find_element(By.CSS_SELECTOR, "a.download-midi")
    assert download.get_attribute("download").endswith(".mid")
    assert server.get(audio.removeprefix(server.url))[:4] == b"RIFF"
    assert server.get(download.get_attribute("href").removeprefix(server.url))[:4] == b"MThd"
    assert page.find_element(By.CSS_SELECTOR, "a.download-musicxml") and page.find_element(By.CSS_SELECTOR, "img")
    lines = page.find_element(By.ID, "lines").text
    assert "--condition style=palestrina" in lines and "labels style=palestrina (guidance 4)" in lines
    assert "--bars 4 --bpm 90 --condition" in lines and ", 90 bpm, in " in lines, "only what was changed is named"
    assert not page.find_element(By.ID, "error").is_displayed()


def test_the_page_shows_the_error_for_a_bad_seed(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.CSS_SELECTOR, "input[name=begin][value=seed]").click()
    page.find_element(By.ID, "seed").send_keys("C4 H9")
    page.find_element(By.ID, "generate").click()
    WebDriverWait(page, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    error = page.find_element(By.ID, "error").text
    assert error.startswith("error: seed item 'H9': not a note name") and "Traceback" not in error
    assert not page.find_elements(By.CSS_SELECTOR, "audio")


def test_several_pieces_come_as_a_zip_of_the_format_asked_for(server, tmp_path):
    import zipfile

    status, headers, body = server.post("/api/generate?format=png", [("length", "4"), ("num_outputs", "2")])
    assert status == 200 and headers["Content-Type"] == "application/zip", body[:200]
    (tmp_path / "pieces.zip").write_bytes(body)
    with zipfile.ZipFile(tmp_path / "pieces.zip") as pieces:
        names = pieces.namelist()
        assert len(names) == 2 and all(name.endswith(".png") for name in names)
        assert all(pieces.read(name)[:4] == b"\x89PNG" for name in names)
    status, _, body = server.post("/api/generate?format=mp3", [("length", "4")])
    assert status == 400 and json.loads(body)["error"].startswith("format must be one of midi, wav, musicxml, png")


def test_an_upload_over_the_size_limit_is_refused_with_413_before_it_is_read(server):
    import http.client

    limit = 8 * 2**20  # app.py's default --max-upload-mb
    status, _, body = server.post("/api/generate", files=[("file", "big.mid", b"\0" * (limit + 1000))])
    assert status == 413 and json.loads(body)["error"] == "big.mid is over this server's limit of 8 MB"
    announced = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    announced.putrequest("POST", "/api/generate")
    announced.putheader("Content-Type", "multipart/form-data; boundary=x")
    announced.putheader("Content-Length", str(100 * limit))
    announced.endheaders()  # and not a byte of the body: the answer comes without it
    answer = announced.getresponse()
    assert answer.status == 413 and b"over this server's limit of 8 MB" in answer.read()
    announced.close()
    assert server.post("/api/generate", [("seed", "C4"), ("length", "4")])[0] == 200


def test_the_page_shows_progress_and_cancels(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    Select(page.find_element(By.ID, "length-kind")).select_by_value("length")
    page.find_element(By.ID, "length-value").send_keys("2000")
    page.find_element(By.ID, "generate").click()
    WebDriverWait(page, 60).until(lambda d: "of 2000 events" in d.find_element(By.ID, "progress-text").text)
    assert page.find_element(By.ID, "generate").get_attribute("disabled")
    page.find_element(By.ID, "cancel").click()
    WebDriverWait(page, 30).until(lambda d: d.find_element(By.ID, "progress-text").text == "cancelled")
    assert not page.find_elements(By.CSS_SELECTOR, "audio") and not page.find_element(By.ID, "error").is_displayed()
    assert page.find_element(By.ID, "generate").is_enabled()


def test_a_reader_stuck_beyond_the_time_limit_is_killed_and_the_next_file_is_read(tmp_path):
    import multiprocessing

    from app_client import stuck_reader
    from musicgen.limits import FileLimits
    from musicgen.webapp import FileChecker

    checker = FileChecker(FileLimits(timeout_seconds=1), check=stuck_reader, grace=1)
    write_tune(tmp_path / "tune.mid", seed=1)
    (tmp_path / "garbage.mid").write_bytes(b"MThd garbage")
    assert checker.refusal(tmp_path / "tune.mid") is None
    assert checker.refusal(tmp_path / "stuck.mid") == "reading it did not end within 2 s"
    assert multiprocessing.active_children() == [], "the stuck worker was killed"
    assert checker.refusal(tmp_path / "garbage.mid") == "too short to be a MIDI file"
    assert checker.refusal(tmp_path / "tune.mid") is None
    checker.close()
