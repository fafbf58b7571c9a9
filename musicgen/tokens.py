"""Token strings: how each kind of token is spelled, and what a token string says.

Only the vocabulary (musicgen/vocabulary.py) reads token strings, through
meaning_of, once per token when it is made; every other module reads the
vocabulary's arrays. The spellings:

    <pad> <start> <end> <hole> <fill>   structure and the infilling markers
    R                                    a rest
    C4, C4.E4.G4                         a note, a chord (pitches low to high)
    dur:8, shift:4                       a duration, the time to the next event (grid steps)
    inst:33, inst:drums                  a General MIDI program, the drum kit
    vel:82                               a velocity (the middle of its bin)
    harmony:D7                           a chord symbol
    meter:6/8                            a time signature (musicgen/meters.py)
    key=D minor                          a label (a control token)
    C4+dur:4+shift:4                     a merged token: a run of the above within one event (musicgen/merges.py)
"""

from musicgen.chords import parse_symbol, symbol_name
from musicgen.errors import UserError
from musicgen.meters import meter_name, parse_meter
from musicgen.notes import DRUMS, parse_pitch, pitch_name

PAD, START, END, REST = "<pad>", "<start>", "<end>", "R"
SPECIAL_TOKENS = [PAD, START, END, REST]
HOLE, FILL = "<hole>", "<fill>"  # the infilling markers (musicgen/vocabulary.py)

# Token kinds, and which kinds may follow which (the event grammar, Vocabulary.grammar). A merged token's kind is
# "merged"; what follows it is what may follow its last part.
KINDS = ["pad", "start", "end", "rest", "note", "chord", "duration", "shift", "instrument", "velocity", "control",
         "hole", "fill", "harmony", "merged", "meter"]
EVENT_KINDS = ("rest", "note", "chord")
PITCHED_KINDS = ("note", "chord")
# What a merged token may hold: the parts of one event, each kind once.
EVENT_PARTS = ("instrument", "velocity", "rest", "note", "chord", "harmony", "meter", "duration", "shift")

INSTRUMENT_PREFIX, VELOCITY_PREFIX, HARMONY_PREFIX, METER_PREFIX = "inst:", "vel:", "harmony:", "meter:"
DURATION_PREFIX, SHIFT_PREFIX = "dur:", "shift:"
CONTROL_SEPARATOR = "="  # control tokens are label=value; no other token holds "="
MERGE_SEPARATOR = "+"  # a merged token spells its parts joined by "+"; no base token holds "+"


def control_token(name, value):
    return f"{name}{CONTROL_SEPARATOR}{value}"


def chord_name(pitches):
    return ".".join(pitch_name(p) for p in sorted(pitches))


def harmony_token(code):
    """A chord symbol's code (musicgen/chords.py) -> its token, e.g. 'harmony:D7'."""
    return f"{HARMONY_PREFIX}{symbol_name(code)}"


def meter_token(numerator, denominator):
    return f"{METER_PREFIX}{meter_name(numerator, denominator)}"


def instrument_token(program):
    return f"{INSTRUMENT_PREFIX}{'drums' if program == DRUMS else program}"


def duration_token(steps):
    return f"{DURATION_PREFIX}{steps}"


def shift_token(steps):
    return f"{SHIFT_PREFIX}{steps}"


def velocity_token(velocity):
    return f"{VELOCITY_PREFIX}{velocity}"


def merged_token(parts):
    """The spelling of a merged token of the base tokens `parts`."""
    return MERGE_SEPARATOR.join(parts)


def meaning_of(token, settings):
    """What a base token says, as {kind, and its pitches, duration, shift, velocity, program, symbol or label};
    a token that is none of the kinds (for the encoding `settings`) is refused."""
    if token in (PAD, START, END, HOLE, FILL):
        return {"kind": token.strip("<>")}
    if token == REST:
        return {"kind": "rest"}
    if CONTROL_SEPARATOR in token:
        name, _, value = token.partition(CONTROL_SEPARATOR)
        if not name or not value:
            raise UserError(f"vocabulary control token {token!r} must read label=value")
        return {"kind": "control", "label": (name, value)}
    if token.startswith(INSTRUMENT_PREFIX):
        return {"kind": "instrument", "program": _number_of(token)}
    if token.startswith(VELOCITY_PREFIX):
        return {"kind": "velocity", "velocity": _number_of(token)}
    if token.startswith(HARMONY_PREFIX):
        return {"kind": "harmony", "symbol": _symbol_of(token)}
    if token.startswith(METER_PREFIX):
        try:
            meter = parse_meter(token[len(METER_PREFIX):])
        except ValueError as error:
            raise UserError(f"vocabulary token {token!r}: {error}") from None
        if meter_token(*meter) != token:
            raise UserError(f"vocabulary token {token!r} should be spelled {meter_token(*meter)!r}")
        return {"kind": "meter", "meter": meter}
    for prefix, kind, limit, lowest in ((DURATION_PREFIX, "duration", settings.max_duration_steps, 1),
                                        (SHIFT_PREFIX, "shift", settings.max_shift_steps, 0)):
        if token.startswith(prefix):
            value = token[len(prefix):]
            if not value.isdigit() or not lowest <= int(value) <= limit:
                raise UserError(f"vocabulary token {token!r} is outside {lowest}..{limit} steps")
            return {"kind": kind, kind: int(value)}
    pitches = _pitches_of(token)
    return {"kind": "note" if len(pitches) == 1 else "chord", "pitches": pitches}


def _number_of(token):
    """The program of an instrument token (DRUMS for inst:drums) or the MIDI velocity of a velocity token."""
    prefix, _, value = token.partition(":")
    if prefix + ":" == INSTRUMENT_PREFIX and value == "drums":
        return DRUMS
    if not value.isdigit() or not (0 if prefix + ":" == INSTRUMENT_PREFIX else 1) <= int(value) <= 127:
        raise UserError(f"vocabulary token {token!r} is not a General MIDI program or velocity")
    return int(value)


def _symbol_of(token):
    """The code of a chord symbol token, which must spell it as harmony_token does."""
    try:
        code = parse_symbol(token[len(HARMONY_PREFIX):])
    except ValueError as error:
        raise UserError(f"vocabulary token {token!r}: {error}") from None
    if harmony_token(code) != token:
        raise UserError(f"vocabulary token {token!r} should be spelled {harmony_token(code)!r}")
    return code


def _pitches_of(token):
    try:
        pitches = tuple(parse_pitch(name) for name in token.split("."))
    except ValueError as error:
        raise UserError(f"vocabulary token {token!r} is not a note, chord, duration or shift ({error})") from None
    if list(pitches) != sorted(set(pitches)):
        raise UserError(f"vocabulary chord {token!r} must list distinct pitches from low to high")
    return pitches
