"""The page and HTTP API of app.py: generate.py's options as a form, each request run as a job (musicgen/jobs.py).

    GET    /                          the page (musicgen/web/: one HTML file, its script and style; nothing is
                                      fetched from the internet)
    GET    /api/models                the models to choose from: what each is, the labels it knows, what it can do
    POST   /api/jobs                  a form of generate.py's options -> {"id": ...} (202), or 4xx {"error": ...}
    GET    /api/jobs/ID               its state, progress, printed lines, error and files
    DELETE /api/jobs/ID               cancel it
    GET    /api/jobs/ID/files/NAME    one of its files
    POST   /api/generate[?format=F]   the same form, answered once the music is made: the MIDI file (or its wav,
                                      musicxml or png), a zip of them for several pieces

Every form is read by generate.py's own parser and checks and made by its own
calls (musicgen/generate_options.py), so the page and the API refuse what the command line refuses, in its
words, and make what it makes. A field is an option's name without its dashes
(seed, bars, top_p, condition, ...); a file comes as `file`, used as the seed
(`file_use=continue`, the default), the music to fill bars in (`infill`) or the
melody to harmonize (`harmonize`).
"""

import asyncio
import contextlib
import dataclasses
import multiprocessing
import shlex
import shutil
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from musicgen import generate_options, sampling
from musicgen.errors import UserError
from musicgen.jobs import Busy, JobQueue
from musicgen.limits import FileLimits, refusal_of
from musicgen.pretrained import DEFAULT, PRETRAINED, default_run
from musicgen.readers import SUPPORTED_SUFFIXES

WEB = Path(__file__).resolve().parent / "web"
# The form's fields that are generate.py options of one value each (the rest: condition, file, file_use, model).
OPTIONS = ("seed", "seed_events", "length", "bars", "seconds", "meter", "chords", "infill_bars", "strategy",
           "temperature", "top_k", "top_p", "beam_width", "random_seed", "guidance", "num_outputs", "instruments",
           "bpm", "program")
FIELDS = set(OPTIONS) | {"condition", "file", "file_use", "model"}
FILE_USES = {"continue": "--seed-midi", "infill": "--infill", "harmonize": "--harmonize"}
# What each file of a piece is, its suffix and media type, and the generate.py option that writes it.
FORMATS = {"midi": (".mid", "audio/midi", None), "wav": (".wav", "audio/wav", "--wav"),
           "musicxml": (".musicxml", "application/vnd.recordare.musicxml+xml", "--musicxml"),
           "png": (".png", "image/png", "--plot")}
MAX_PIECES = 4  # pieces a request may ask for: each is a row of one batch, in memory until written


class TooLarge(UserError):
    """An upload over the size limit (answered 413)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What app.py's options set."""

    checkpoints: Path = Path("checkpoints")  # trained runs offered beside the shipped models
    workers: int = 2  # jobs generating at once
    max_waiting: int = 16  # jobs waiting beyond those; more are refused as busy (503)
    time_limit: float = 300.0  # seconds one job may generate
    max_upload_mb: float = 8.0  # the largest file a request may carry
    temp_dir: Path = None  # where the jobs' folders go (default: the system's)


class Models:
    """The models a request may name (shipped ones, then trained runs), and those loaded, the last `loaded` kept;
    `load_run(folder)` loads one (models.registry.load_run, which this library cannot import)."""

    def __init__(self, checkpoints, load_run, loaded=2):
        self.checkpoints, self.load_run, self.loaded = Path(checkpoints), load_run, loaded
        self.runs = OrderedDict()  # (path, modified) -> runs.Run
        self.lock = threading.Lock()

    def folders(self):
        """{name: folder}: pretrained/<name> (the default first), then <checkpoints>/<run>."""
        from musicgen.runs import trained_runs

        shipped = sorted((folder for folder in PRETRAINED.iterdir() if (folder / "best.keras").is_file()),
                         key=lambda folder: (folder.name != DEFAULT, folder.name))
        named = {f"pretrained/{folder.name}": folder for folder in shipped}
        named.update({f"{self.checkpoints.name}/{run.name}": run for run in trained_runs(self.checkpoints)})
        return named

    def describe(self):
        """What the page shows of each model; a run that cannot be read is left out."""
        described = []
        for name, folder in self.folders().items():
            try:
                described.append({"name": name, **model_facts(folder)})
            except UserError:
                continue
        return described

    def named(self, name):
        """(name, folder) of the model a request names (no name: generate.py's default), or a UserError."""
        folders = self.folders()
        if not name:
            default = default_run(self.checkpoints)[0]
            return next((known for known, folder in folders.items() if folder == default), str(default)), default
        if name not in folders:
            raise UserError(f"unknown model {name!r}; choose one of {', '.join(folders)}")
        return name, folders[name]

    def load(self, folder):
        """The runs.Run in `folder`, loaded once while it is unchanged."""
        weights = folder / "best.keras"
        key = (folder, (weights if weights.exists() else folder / "run_config.json").stat().st_mtime)
        with self.lock:
            if key not in self.runs:
                self.runs[key] = self.load_run(folder)
                while len(self.runs) > self.loaded:
                    self.runs.popitem(last=False)
            self.runs.move_to_end(key)
            return self.runs[key]


def model_facts(folder):
    """What a run folder's model is and can do, read from its run_config.json and vocab.json (no TensorFlow)."""
    from musicgen.chords import symbol_name
    from musicgen.dataset import read_vocabulary
    from musicgen.meters import meter_name
    from musicgen.runs import read_run_config

    run_config = read_run_config(folder)
    vocabulary = read_vocabulary(folder / "vocab.json")
    settings = vocabulary.settings
    return {"kind": run_config["model"], "labels": vocabulary.controls,
            "chords": [symbol_name(code) for code in vocabulary.symbols],
            "infilling": vocabulary.infilling, "instruments": settings.instruments,
            "meters": [meter_name(*meter) for meter in vocabulary.meters] if settings.meters else [],
            "melody_only": bool(run_config.get("preprocessing", {}).get("melody_only", False))}


def make_app(settings, load_run):
    """The Starlette application, loading runs with `load_run(folder)`; its jobs' folders are removed when it shuts
    down."""
    jobs = JobQueue(settings.temp_dir, settings.workers, settings.max_waiting, settings.time_limit)
    models = Models(settings.checkpoints, load_run)
    files = FileChecker()

    async def page(request):
        return FileResponse(WEB / "index.html")

    async def list_models(request):
        return JSONResponse(await run_in_threadpool(models.describe))

    async def new_job(request):
        job = await submitted(request, ("wav", "musicxml", "png"))
        return job if isinstance(job, Response) else JSONResponse({"id": job.id}, status_code=202)

    async def job_state(request):
        job = jobs.get(request.path_params["id"])
        if job is None:
            return _error("no such job (finished jobs are kept for 30 minutes)", 404)
        if request.method == "DELETE":
            job.cancelled.set()
        return JSONResponse(job_json(job, jobs.position(job)))

    async def job_file(request):
        job = jobs.get(request.path_params["id"])
        name = request.path_params["name"]
        if job is None or name not in job.files():
            return _error("no such file", 404)
        return FileResponse(job.folder / "out" / name, media_type=_media_type(name), filename=name)

    async def generate_now(request):
        format_ = request.query_params.get("format", "midi")
        if format_ not in FORMATS:
            return _error(f"format must be one of {', '.join(FORMATS)}, got {format_!r}", 400)
        job = await submitted(request, () if format_ == "midi" else (format_,))
        if isinstance(job, Response):
            return job
        while not job.finished.is_set():
            if await request.is_disconnected():
                job.cancelled.set()
            await asyncio.sleep(0.1)
        forget = BackgroundTask(jobs.forget, job)
        if job.state != "done":
            jobs.forget(job)
            return _error(job.work.shown(job.error or "cancelled"), 500 if job.bug else 400)
        paths = [job.folder / "out" / piece[format_] for piece in job.pieces]
        if len(paths) == 1:
            return FileResponse(paths[0], media_type=FORMATS[format_][1], filename=paths[0].name, background=forget)
        archive = job.folder / "pieces.zip"  # on disk: a few pieces of audio can be hundreds of MB
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in paths:
                zipped.write(path, path.name)
        return FileResponse(archive, media_type="application/zip", filename=archive.name, background=forget)

    async def submitted(request, formats):
        """The Job a request's form asks for, queued; or the 4xx Response that refuses it."""
        limit = int(settings.max_upload_mb * 2**20)
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return _error("send the form with a Content-Length", 411)
        if int(length) > limit + 2**16:
            return _error(f"the request is over this server's limit of {settings.max_upload_mb:g} MB", 413)
        try:
            form = await request.form(max_files=1, max_fields=64)
        except MultiPartException as error:
            return _error(f"the form cannot be read: {error.message}", 400)
        folder = jobs.new_folder()
        try:
            job = await run_in_threadpool(read_form, form, folder, formats, models, files, limit)
            return jobs.submit(folder, job)
        except UserError as error:
            shutil.rmtree(folder, ignore_errors=True)
            return _error(str(error), 413 if isinstance(error, TooLarge) else 400)
        except Busy as busy:
            return _error(str(busy), 503)
        finally:
            await form.close()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=warm_up, daemon=True, name="warm-up").start()
        yield
        jobs.close()
        files.close()

    def warm_up():
        """Load TensorFlow and the default model while the page is already served: the first request is then
        quick."""
        try:
            models.load(models.named("")[1])
        except UserError:
            pass

    routes = [Route("/", page), Route("/api/models", list_models), Route("/api/jobs", new_job, methods=["POST"]),
              Route("/api/jobs/{id}", job_state, methods=["GET", "DELETE"]),
              Route("/api/jobs/{id}/files/{name}", job_file), Route("/api/generate", generate_now, methods=["POST"]),
              Mount("/static", StaticFiles(directory=WEB), name="static")]
    return Starlette(routes=routes, lifespan=lifespan)


def read_form(form, folder, formats, models, files, upload_limit):
    """The work of one request (a function of its Job), its form read and checked as generate.py checks its
    arguments; a UserError says what is refused."""
    unknown = sorted(set(form.keys()) - FIELDS)
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(FIELDS))}")
    model_name, model = models.named(_text(form, "model"))
    out = folder / "out"
    argv = [FORMATS[name][2] for name in formats]
    for name in OPTIONS:  # a field sent empty is passed on, for generate.py to say what is wrong with it
        if name in form:
            argv += [f"--{name.replace('_', '-')}", _text(form, name)]
    for condition in form.getlist("condition"):
        if not isinstance(condition, str):
            raise UserError("condition must be text, LABEL=VALUE")
        if condition.strip():
            argv += ["--condition", condition]
    shown = [(str(out) + "/", ""), (str(model), model_name)]  # what the page says for our paths
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        path, name = save_upload(upload, folder, upload_limit)
        refusal = files.refusal(path)
        if refusal:
            raise UserError(f"{name}: {refusal}")
        use = _text(form, "file_use") or "continue"
        if use not in FILE_USES:
            raise UserError(f"file_use must be one of {', '.join(FILE_USES)}, got {use!r}")
        argv += [FILE_USES[use], str(path)]
        shown.append((str(path), name))
    parser = generate_options.argument_parser()
    parser.error = _refuse  # the parser's message as a UserError, where the command line would exit
    args = parser.parse_args(["--checkpoint", str(model), "--output", str(out)] + argv)
    if args.num_outputs > MAX_PIECES:
        raise UserError(f"--num-outputs: this server writes at most {MAX_PIECES} pieces a request")
    request = generate_options.check_args(args)

    def work(job):
        run = models.load(model)
        paths = generate_options.output_paths(out, run.path.name, args.num_outputs)
        steered = dataclasses.replace(request, strategy=sampling.from_arguments(args, job.report))
        generate_options.generate(args, steered, run, paths)
        return [{kind: path.with_suffix(suffix).name for kind, (suffix, _, _) in FORMATS.items()
                 if path.with_suffix(suffix).is_file()} for path in paths]

    work.shown = lambda text: _shown(text, shown)
    work.command = work.shown(shlex.join(["python", "generate.py", "--checkpoint", str(model)] + argv))
    return work


def save_upload(upload, folder, limit):
    """(path, name shown) of an uploaded file, saved in the job's folder under a name of ours: the sender's name
    is never a path, only its suffix is kept, and only for the music formats the readers know."""
    name = Path(upload.filename.replace("\\", "/")).name[:100] or "upload"
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UserError(f"{name}: not a music file this reads ({', '.join(SUPPORTED_SUFFIXES)})")
    path = folder / f"upload{suffix}"
    size = 0
    with open(path, "wb") as saved:
        while chunk := upload.file.read(2**20):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"{name} is over this server's limit of {limit / 2**20:g} MB")
            saved.write(chunk)
    return path, name


class FileChecker:
    """Reads each uploaded file once in a worker process, within preprocessing's limits (musicgen/limits.py). A
    parser that hangs in Python is stopped by the time limit; one that hangs where the limit cannot reach it (in C)
    or crashes is given up on `grace` seconds later, and the worker is killed and replaced."""

    def __init__(self, limits=FileLimits(), check=refusal_of, grace=30.0):
        self.limits, self.check, self.grace = limits, check, grace
        self.pool = None
        self.lock = threading.Lock()

    def refusal(self, path):
        """Why the file at `path` is refused, in a line, or None."""
        with self.lock:
            if self.pool is None:
                self.pool = multiprocessing.get_context("spawn").Pool(1)
            pool = self.pool
        try:
            return pool.apply_async(self.check, (path, self.limits)).get(self.limits.timeout_seconds + self.grace)
        except multiprocessing.TimeoutError:
            with self.lock:
                if self.pool is pool:
                    self.pool = None
            pool.terminate()
            return f"reading it did not end within {self.limits.timeout_seconds + self.grace:g} s"

    def close(self):
        if self.pool is not None:
            self.pool.terminate()


def job_json(job, position):
    """What the page is told of a job: names of files become their addresses."""
    files = f"/api/jobs/{job.id}/files/"
    return {"id": job.id, "state": job.state, "position": position, "command": job.work.command,
            "progress": dict(zip(("reached", "total", "unit"), job.progress)) if job.progress else None,
            "lines": [job.work.shown(line.rstrip("\n")) for line in job.lines],
            "error": job.work.shown(job.error) if job.error else None,
            "pieces": [{kind: files + name for kind, name in piece.items()} for piece in job.pieces]}


def _refuse(message):
    raise UserError(message)


def _text(form, name):
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise UserError(f"{name} must be text, not a file")
    return (value or "").strip()


def _shown(text, replacements):
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def _media_type(name):
    return next((media for suffix, media, _ in FORMATS.values() if name.endswith(suffix)), "application/octet-stream")


def _error(message, status):
    return JSONResponse({"error": message}, status_code=status)
