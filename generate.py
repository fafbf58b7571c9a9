"""Write music with a trained model: a whole piece from its beginning, or a seed extended, as MIDI.

    python generate.py                                 # a whole piece from the default model, until it ends it
    python generate.py --condition style=palestrina --condition key="D minor"   # the shipped model of styles
    python generate.py --seed "D4 F#4 A4" --bars 16
    python generate.py --seed "C4 E4 G4 C4.E4.G4:2 R:1" --strategy top-k --top-k 10 --num-outputs 4
    python generate.py --seed-midi tune.mid --checkpoint checkpoints/gru --length 256
    python generate.py --wav --musicxml --plot        # also audio, sheet music and a piano roll
    python generate.py --seed "mf C4.E4.G4:2@piano C2:2@bass" --instruments piano,bass,drums
    python generate.py --condition density=high --checkpoint checkpoints/mine   # a model trained on labels
    python generate.py --infill song.mid --infill-bars 5-8   # new bars 5-8 (a model trained with --infilling)
    python generate.py --harmonize melody.mid --checkpoint pretrained/bach   # voices under a melody
    python generate.py --chords "G D7 | G C" --bars 8      # music over chords (a model trained with chord symbols)

Seed notation: notes with octaves (C4 is middle C; F#3, Bb2), chords joined by
'.', R for a rest, each optionally followed by ':' and a duration in quarter
notes (default 1); for models that keep them, dynamic marks (p, mf, ff, ...) and
instruments after '@' (C2:2@bass). Exact vocab.json token names work too. With
no seed, the model begins a piece at its start. It writes until the model ends
the piece, or for --length events, --bars bars or --seconds seconds.
"""

from musicgen.errors import run_cli
from musicgen.generate_options import argument_parser, check_args, generate, output_paths


def parse_args(argv=None):
    return argument_parser(__doc__).parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    request = check_args(args)
    from musicgen.pretrained import default_run
    from musicgen.runs import read_run_config

    run_dir, chosen = (args.checkpoint, None) if args.checkpoint else default_run()
    if chosen:
        print(f"using {chosen}")
    read_run_config(run_dir)  # a wrong folder is refused before TensorFlow takes seconds to load
    paths = output_paths(args.output, run_dir.name, args.steps if args.interpolate else args.num_outputs)
    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry

    generate(args, request, registry.load_run(run_dir), paths)


if __name__ == "__main__":
    run_cli(main)
