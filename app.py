"""A page in the browser for making music with the models (the shipped ones and your runs), and an HTTP API.

    python app.py                              # then open http://127.0.0.1:7860
    python app.py --port 8000 --workers 1
    curl -F seed="D4 F#4 A4" -F bars=8 http://127.0.0.1:7860/api/generate -o piece.mid

The page asks what generate.py asks (a model, a seed typed or uploaded, labels and
guidance, chords, bars to fill in, a melody to harmonize, decoding, length) and
plays, draws and offers for download what it makes. It is served from this
machine alone: nothing is loaded from the internet. docs/app.md explains it and
the API.
"""

import argparse
import socket
from pathlib import Path

from musicgen.errors import UserError, run_cli

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to serve on (default: 127.0.0.1, this machine only; 0.0.0.0 lets anyone "
                             "who can reach this machine use it)")
    parser.add_argument("--port", type=int, default=7860, help="the port (default: 7860)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"),
                        help="trained runs to offer beside the shipped models (default: checkpoints/)")
    parser.add_argument("--workers", type=int, default=2, help="pieces generated at once (default: 2)")
    parser.add_argument("--queue", type=int, default=16,
                        help="requests that may wait for a worker; more are refused as busy (default: 16)")
    parser.add_argument("--time-limit", type=float, default=300,
                        help="seconds one request may generate (default: 300)")
    parser.add_argument("--max-upload-mb", type=float, default=8,
                        help="the largest file a request may carry, in MB (default: 8)")
    parser.add_argument("--temp-dir", type=Path,
                        help="where each request's own folder is made, and removed (default: the system's)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be 1..65535, got {args.port}")
    for name in ("workers", "queue"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.time_limit > 0 or not args.max_upload_mb > 0:
        raise UserError("--time-limit and --max-upload-mb must be above 0")
    if args.temp_dir is not None and not args.temp_dir.is_dir():
        raise UserError(f"--temp-dir {args.temp_dir} is not a folder")
    check_free(args.host, args.port)
    import uvicorn

    from musicgen.webapp import Settings, make_app

    app = make_app(Settings(args.checkpoints, args.workers, args.queue, args.time_limit, args.max_upload_mb,
                            args.temp_dir), load_run)
    if args.host not in LOCAL_HOSTS:
        print(f"warning: serving on {args.host}: anyone who can reach this machine can use it")
    print(f"serving http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def load_run(folder):
    """A trained run, TensorFlow imported at the first: the page is served before it is loaded."""
    from musicgen.backend import import_tensorflow

    import_tensorflow()
    from models import registry

    return registry.load_run(folder)


def check_free(host, port):
    """Refuse, in a line, an address that cannot be served on (a port in use, a host not of this machine)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UserError(f"cannot serve on {host}:{port}: {error.strerror or error} (--port for another)") from None


if __name__ == "__main__":
    run_cli(main)
