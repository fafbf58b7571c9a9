"""generate.py's options: their parser, the Request they make, and the pieces they ask of a run, written out.

generate.py and app.py (through musicgen/webapp.py) share this module, so the page
asks for, refuses and makes exactly what the command line does.
"""

import argparse
import dataclasses
import datetime
import os
import random
from pathlib import Path

from musicgen import sampling
from musicgen.chords import MAX_BARS
from musicgen.errors import UserError
from musicgen.labels import STYLE_LABEL
from musicgen.meters import check_meter
from musicgen.sampling import MAX_EVENTS


# The classifier-free guidance of a continuation that opens with labels, unless --guidance says otherwise: of
# pretrained/styles' pieces, 34 % were in the key asked for with plain conditioning (1), 80 % with 3 and 86 %
# with 4, and the classifier named the style asked for in 51 %, 70 % and 67 % (docs/pretrained.md). It costs a
# second decoder run.
LABEL_GUIDANCE = 4.0
# Beam search compares continuations of one length, so it writes a number of events, never "until the end".
BEAM_EVENTS = 128


def argument_parser(description=None):
    """generate.py's options; app.py reads its page's fields through the same parser."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    seed = parser.add_argument_group("seed (default: none; the model begins the piece)")
    seed.add_argument("--seed", help="events in seed notation, e.g. \"C4 E4 G4 C4.E4.G4:2 R:1\"")
    seed.add_argument("--seed-midi", type=Path,
                      help="use the start of this MIDI (or ABC, MusicXML) file as the seed; the output keeps its tempo map")
    seed.add_argument("--seed-events", type=int, default=16, help="events taken from --seed-midi (default: 16)")
    decoding = sampling.add_arguments(parser)
    decoding.add_argument("--length", type=int,
                          help=f"events to write after the seed (default: until the model ends the piece, at most "
                               f"{MAX_EVENTS}; {BEAM_EVENTS} with beam search)")
    decoding.add_argument("--seconds", type=float, help="write this many seconds of music (at --bpm)")
    decoding.add_argument("--num-outputs", type=int, default=1, help="pieces to generate, in one batch (default: 1)")
    decoding.add_argument("--condition", action="append", default=[], metavar="LABEL=VALUE",
                          help="steer a model trained on labelled music (preprocess.py --compute-labels, "
                               "--label-from, --labels), e.g. key=\"D minor\", density=high (repeatable); a "
                               "model that knows styles (a style label) plays one chosen at random where none is "
                               "asked for, and says which")
    decoding.add_argument("--guidance", type=float, metavar="W",
                          help="how much the labels count: 1 conditions plainly, above 1 more (classifier-free "
                               f"guidance; default: {LABEL_GUIDANCE:g} where the music opens with labels, asked for "
                               "or a style chosen at random, else 1)")
    decoding.add_argument("--instruments", metavar="LIST",
                          help="only these instruments may be generated, e.g. piano,bass,drums (General MIDI names, "
                               "families or program numbers; for models that keep instruments)")
    fill = parser.add_argument_group("given music: bars to fill in, a melody to harmonize, chords to write over")
    fill.add_argument("--infill", type=Path, metavar="FILE",
                      help="a MIDI (or ABC, MusicXML) file whose --infill-bars are written anew, leading from what "
                           "comes before them into what comes after (runs trained on preprocess.py --infilling data)")
    fill.add_argument("--infill-bars", metavar="FIRST-LAST",
                      help="with --infill: the bars to fill, counted from 1, e.g. 5-8")
    fill.add_argument("--bars", metavar="N",
                      help="how many bars of --meter to write; with --chords, the chords repeated to fill them "
                           "(default: the bars given, once)")
    fill.add_argument("--chords", metavar="PROGRESSION",
                      help="chord symbols to write music over, a bar each (\"G D7 G C\") or bars split by | "
                           "(\"G D7 | G C\"); for runs whose corpus kept chord symbols (preprocess.py --chord-symbols)")
    fill.add_argument("--meter", help="the time signature of the bars of --bars and --chords (default: 4/4), and the "
                                      "one a model that keeps meters writes in (default: its own choice)")
    fill.add_argument("--harmonize", type=Path, metavar="FILE",
                      help="keep the melody of this file (its highest note at each onset) as the top voice and "
                           "write the voices under it")
    latent = parser.add_argument_group("latent space (vae runs)")
    latent.add_argument("--prior", action="store_true", help="sample the latent from the prior instead of encoding a seed")
    latent.add_argument("--interpolate", nargs=2, metavar=("SEED_A", "SEED_B"),
                        help="one piece per step along the latent path from SEED_A's encoding to SEED_B's")
    latent.add_argument("--steps", type=int, default=5, help="pieces along the --interpolate path (default: 5)")
    output = parser.add_argument_group("output")
    output.add_argument("--checkpoint", type=Path,
                        help="a run folder made by train.py, or a shipped model: pretrained/styles, pretrained/bach, "
                             "pretrained/folk (default: the newest run under checkpoints/, else pretrained/styles)")
    output.add_argument("--output", type=Path, default=Path("outputs"),
                        help="a .mid file, or a folder for timestamped files (default: outputs/)")
    output.add_argument("--bpm", type=float,
                        help="tempo (default: the seed file's tempo map, else the training data's median tempo)")
    output.add_argument("--program", type=int, default=0,
                        help="General MIDI instrument 0-127 of models that keep no instruments (default: 0, piano)")
    listen = parser.add_argument_group("listen and look (files beside each .mid)")
    listen.add_argument("--wav", action="store_true",
                        help="render audio with FluidSynth and a General MIDI SoundFont (else sine waves, with a warning)")
    listen.add_argument("--soundfont", type=Path, help="the .sf2 file for --wav (default: the system's General MIDI one)")
    listen.add_argument("--musicxml", action="store_true", help="write sheet music (.musicxml) for MuseScore and others")
    listen.add_argument("--plot", action="store_true", help="draw a piano roll (.png) with the seed marked")
    return parser


@dataclasses.dataclass(frozen=True)
class Request:
    """What the arguments ask for, read and checked once before TensorFlow is imported."""

    strategy: object  # a musicgen.sampling strategy
    conditions: dict  # {label: value} of --condition
    length: str  # how long the music runs, in words: "until the model ends it", "16 bars", "30 seconds", "64 events"
    progression: object = None  # a chords.Progression for --chords
    infill_bars: tuple = None  # (first, last) for --infill
    instruments: frozenset = None  # the programs --instruments allows
    soundfont: Path = None  # for --wav


def check_args(args):
    """The Request the arguments make, each setting checked once, before TensorFlow is imported."""
    from musicgen.audio import find_soundfont
    from musicgen.key_value import key_values
    from musicgen.midi import check_bpm

    if sum(map(bool, (args.seed, args.seed_midi, args.interpolate, args.prior, args.infill, args.harmonize,
                      args.chords))) > 1:
        raise UserError("give one of --seed, --seed-midi, --infill, --harmonize, --chords, --interpolate and --prior")
    if (args.harmonize or args.chords) and args.strategy == "beam":
        raise UserError("--harmonize and --chords sample under what is given; use a strategy other than beam")
    if args.bars is not None and (args.infill or not args.bars.strip().isdigit()):
        raise UserError(f"--bars is how many bars to write; the bars to fill in are --infill-bars, "
                        f"e.g. --infill FILE --infill-bars {args.bars.strip() if args.infill else '5-8'}")
    if args.bars is not None and not 1 <= int(args.bars) <= MAX_BARS:
        raise UserError(f"--bars must be in 1..{MAX_BARS}, got {int(args.bars)}")
    if sum(value is not None for value in (args.length, args.bars, args.seconds)) > 1:
        raise UserError("give one of --length, --bars and --seconds: how long the music runs")
    if (args.harmonize or args.infill) and (args.length, args.bars, args.seconds) != (None, None, None):
        raise UserError("--harmonize and --infill write as long as the music given: --length, --bars and --seconds "
                        "do not apply")
    if args.chords and (args.length is not None or args.seconds is not None):
        raise UserError("--chords writes for the bars of its chords: give --bars, not --length or --seconds")
    if args.strategy == "beam" and (args.bars is not None or args.seconds is not None):
        raise UserError(f"beam search writes a number of events: give --length (default with beam: {BEAM_EVENTS})")
    if bool(args.infill) != bool(args.infill_bars):
        raise UserError("--infill FILE and --infill-bars FIRST-LAST go together")
    progression = infill_bars = instruments = None
    if args.meter is not None:
        args.meter = check_meter(args.meter)
    args.bar_meter = args.meter or "4/4"  # what --bars and --chords count bars of
    if args.chords:
        from musicgen.chords import Progression

        progression = Progression.parse(args.chords, int(args.bars) if args.bars else None, args.bar_meter)
    if args.infill:
        from musicgen.infilling import parse_bars

        infill_bars = parse_bars(args.infill_bars)
        if args.strategy == "beam":
            raise UserError("--infill samples until the bars are full; use a strategy other than beam")
    if (args.interpolate or args.prior) and args.strategy == "beam":
        raise UserError("--interpolate and --prior sample; use a strategy other than beam")
    if args.length is not None and not 1 <= args.length <= MAX_EVENTS:
        raise UserError(f"--length must be 1 to {MAX_EVENTS} events, got {args.length}")
    if args.seconds is not None and not 0 < args.seconds <= 3600:
        raise UserError(f"--seconds must be above 0 and at most 3600, got {args.seconds}")
    if args.num_outputs < 1:
        raise UserError(f"--num-outputs must be at least 1, got {args.num_outputs}")
    if args.seed_events < 1:
        raise UserError(f"--seed-events must be at least 1, got {args.seed_events}")
    if not 0 <= args.program <= 127:
        raise UserError(f"--program must be a General MIDI program 0..127, got {args.program}")
    if args.bpm is not None:
        check_bpm(args.bpm, "--bpm")
    conditions = {name: value.strip()
                  for name, value in key_values(args.condition, "--condition", "LABEL=VALUE", 'key="D minor"').items()}
    if conditions and (args.interpolate or args.prior):
        raise UserError("--condition steers a seed's continuation; it does not apply to --interpolate or --prior")
    if args.guidance not in (None, 1) and (not conditions or args.infill or args.harmonize or args.chords):
        raise UserError("--guidance strengthens the --condition labels of a continuation: give --condition too "
                        "(and none of --infill, --harmonize and --chords)")
    if args.guidance is not None and not 0 < args.guidance <= 10:
        raise UserError(f"--guidance must be above 0 and at most 10, got {args.guidance}")
    if args.instruments is not None:
        from musicgen.instruments import parse_instrument_list

        instruments = parse_instrument_list(args.instruments)
    if args.length is not None or args.strategy == "beam":
        length = f"{args.length or BEAM_EVENTS} events"
    elif args.bars is not None:
        length = f"{int(args.bars)} bars of {args.bar_meter}"
    elif args.seconds is not None:
        length = f"{args.seconds:g} seconds"
    else:
        length = f"until the model ends the piece (at most {MAX_EVENTS} events)"
    return Request(sampling.from_arguments(args, progress=True), conditions, length, progression, infill_bars,
                   instruments, find_soundfont(args.soundfont) if args.wav else None)


def output_paths(output, run_name, count):
    """The files to write: --output itself if it names a .mid file, else timestamped names in that folder."""
    if output.suffix.lower() in (".mid", ".midi"):
        paths = [output] if count == 1 else [output.with_name(f"{output.stem}-{i:02d}{output.suffix}") for i in range(1, count + 1)]
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        paths = [output / f"{run_name}-{stamp}-{i:02d}.mid" for i in range(1, count + 1)]
    folder = paths[0].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder {folder} is not writable")
    return paths


def generate(args, request, run, paths):
    """The pieces the checked arguments ask of a loaded run, written to `paths` (one a piece), each said in a line."""
    vocabulary = run.vocabulary.restricted_to(request.instruments) if request.instruments else run.vocabulary
    if not (args.interpolate or args.prior):
        request = with_a_style(request, vocabulary, args.random_seed)
    generated = plan(args, request, run, vocabulary)
    print(f"{run.spec.name} from {run.path}; {generated.description}; {args.strategy} decoding"
          + ("" if args.harmonize or args.infill or args.chords else f", {request.length}"))
    write_pieces(args, request, run, vocabulary, generated, paths)


def with_a_style(request, vocabulary, random_seed):
    """The request, asking for one of the styles a model knows (its `style` label) where no --condition names one:
    a model of many styles plays one at a time, chosen at random, and says which."""
    styles = vocabulary.controls.get(STYLE_LABEL)
    if not styles or any(name.strip().lower() == STYLE_LABEL for name in request.conditions):
        return request
    style = random.Random(random_seed).choice(styles)
    print(f"style={style}, chosen at random (--condition style=NAME for another: {', '.join(styles)})")
    return dataclasses.replace(request, conditions={STYLE_LABEL: style, **request.conditions})


def plan(args, request, run, vocabulary):
    """The pieces the arguments ask for, as a generation.Generated."""
    from musicgen import generation
    from musicgen.seed import seed_tokens

    strategy, conditions, count = request.strategy, request.conditions, args.num_outputs
    if args.harmonize:
        return generation.harmonize_plan(run, vocabulary, strategy, args.harmonize, conditions, count,
                                         args.random_seed)
    if args.chords:
        return generation.chords_plan(run, vocabulary, strategy, request.progression, conditions, count,
                                      args.random_seed)
    if args.infill:
        return generation.infill_plan(run, vocabulary, strategy, args.infill, request.infill_bars, conditions, count,
                                      args.random_seed)
    length = length_of(args, run, vocabulary.settings)
    if args.interpolate or args.prior:
        return generation.latent_plan(run, vocabulary, strategy, args.prior, args.interpolate, args.steps, length,
                                      args.random_seed)
    seed = seed_tokens(run, args.seed, args.seed_midi, args.seed_events)
    meter = args.bar_meter if args.bars is not None else args.meter
    guidance = args.guidance if args.guidance is not None else LABEL_GUIDANCE if conditions else 1.0
    return generation.continuation_plan(run, vocabulary, strategy, seed, conditions, guidance, count, length,
                                        args.random_seed, meter)


def length_of(args, run, settings):
    """The sampling.Length that --length, --bars or --seconds ask for (until the model ends the piece without
    them); seconds count at --bpm, else at the training data's median tempo."""
    from musicgen.meters import bar_steps, parse_meter
    from musicgen.sampling import Length

    if args.length is not None or args.strategy == "beam":
        return Length(args.length or BEAM_EVENTS)
    if args.bars is not None:
        return Length(steps=int(args.bars) * bar_steps(*parse_meter(args.bar_meter), settings.steps_per_quarter))
    if args.seconds is not None:
        quarters = args.seconds * (args.bpm or run.run_config["default_bpm"]) / 60
        return Length(steps=max(1, round(quarters * settings.steps_per_quarter)))
    return Length(to_end=True)


def write_pieces(args, request, run, vocabulary, generated, paths):
    """Each generated piece as MIDI at its path, with its --wav, --musicxml and --plot companions."""
    import numpy as np

    from musicgen.encoding import event_notes, event_symbols
    from musicgen.generation import musical_events
    from musicgen.harmonize import voiced
    from musicgen.instruments import instrument_name
    from musicgen.meters import meter_name
    from musicgen.midi import write_midi
    from musicgen.notes import PITCH, PROGRAM, normalise_notes

    tempo_changes = generated.tempo_changes if args.bpm is None else None
    bpm = args.bpm or (tempo_changes[0, 1] if tempo_changes is not None else run.run_config["default_bpm"])
    tempo = f"{bpm:g} bpm" if tempo_changes is None or len(tempo_changes) == 1 else \
        f"the seed's tempo map ({len(tempo_changes)} tempos from {bpm:g} bpm)"
    spq = vocabulary.settings.steps_per_quarter
    # A melody-only model writes chord symbols but no accompaniment: the symbols are played under its melody.
    play_symbols = run.recipe.melody_only and bool(vocabulary.symbols)
    if play_symbols:
        print("chord symbols are played as chords under the melody")
    given = "from the seed" if generated.given == "seed" else "given"
    for index, (path, events) in enumerate(zip(paths, generated.pieces)):
        played, marked = event_notes(events), generated.melody
        if play_symbols:
            chords = voiced(event_symbols(events))
            played = np.concatenate([played, chords])
            marked = chords if generated.given == "chords" else marked
        notes, merged, cut = normalise_notes(played)  # one note per key at a time, as in training
        if not vocabulary.settings.instruments:
            notes[:, PROGRAM] = args.program
        meters = written_meters(args, vocabulary, generated, events)
        write_midi(path, notes, spq, bpm, tempo_changes, meters)
        pitches = len(set(notes[:, PITCH].tolist()))
        instruments = ", ".join(instrument_name(p) for p in np.unique(notes[:, PROGRAM]).tolist())
        repairs = [f"{count} {what}" for count, what in ((merged, "doubled notes merged"),
                                                         (cut, "notes cut where their key was struck again")) if count]
        ending = [] if generated.ended is None else ["ended by the model" if generated.ended[index]
                                                      else "stopped at the cap: the model did not end it"]
        print(f"wrote {path}: {musical_events(events)} events" + (f" ({generated.given_events} {given})" if generated.given_events else "")
              + f", {len(notes)} notes, {pitches} distinct pitches, {instruments or 'no instruments'}, {tempo}"
              + f", in {' then '.join(meter_name(n, d) for n, d in meters[:3, 1:].tolist())}"
              + (" and more meters" if len(meters) > 3 else "")
              + "".join(f"; {r}" for r in repairs + ending))
        write_companions(args, request, path, notes, spq, bpm, meters, seed_steps=generated.seed_steps,
                         title=f"{path.name}: {run.spec.name}, {args.strategy} decoding",
                         seconds=vocabulary.settings.timing == "seconds", given_from=generated.given_from,
                         given=None if marked is None else given_notes(notes, marked))


def written_meters(args, vocabulary, generated, events):
    """The time signatures a piece is written in: a given file's, else those the model wrote where it keeps meters,
    else --meter's (or 4/4) throughout, as rows of (grid step, numerator, denominator)."""
    from musicgen.encoding import event_meters
    from musicgen.meters import default_meters, parse_meter

    if generated.meters is not None:
        return generated.meters
    if vocabulary.settings.meters:
        return event_meters(events)
    return default_meters(parse_meter(args.bar_meter))


def given_notes(notes, given_part):
    """Which of the notes are the given part's (same onset and pitch)."""
    import numpy as np

    from musicgen.notes import ONSET, PITCH

    keys = set(zip(given_part[:, ONSET].tolist(), given_part[:, PITCH].tolist()))
    return np.array([key in keys for key in zip(notes[:, ONSET].tolist(), notes[:, PITCH].tolist())], dtype=bool)


def write_companions(args, request, midi_path, notes, steps_per_quarter, bpm, meters, seed_steps, title,
                     seconds=False, given_from=None, given=None):
    """The --wav, --musicxml and --plot files of one piece, named after its MIDI file; `seconds`: the encoding
    counts real time; `given_from`: where given music resumes after an infilled gap; `given`: which notes were
    given (a harmonized melody)."""
    if args.wav:
        from musicgen.audio import render_wav

        method = render_wav(midi_path, midi_path.with_suffix(".wav"), request.soundfont)
        print(f"  {midi_path.with_suffix('.wav')} ({method})")
    if args.musicxml:
        from musicgen.notation import write_musicxml

        moved = write_musicxml(midi_path.with_suffix(".musicxml"), notes, steps_per_quarter, bpm, midi_path.stem,
                               meters)
        print(f"  {midi_path.with_suffix('.musicxml')}"
              + (f" ({moved} notes below C0 written an octave up: sheet music has no lower octave)" if moved else ""))
    if args.plot:
        from musicgen.plots import plot_piano_roll

        plot_piano_roll(midi_path.with_suffix(".png"), notes, steps_per_quarter, seed_steps, title, seconds,
                        given_from, given)
        print(f"  {midi_path.with_suffix('.png')}")
