"""The vocabulary: events (musicgen/encoding.py) spelled as tokens, token ids and what each one means.

Every event is three tokens:

    <what> dur:<steps> shift:<steps>      e.g.  C4.E4.G4 dur:8 shift:8

where <what> is a note (C4), a chord of notes joined by '.', or R for a rest. A
piece is wrapped in <start> ... <end>. Richer encodings add tokens before the
notes of an event, only where their settings ask for them:

    inst:33 vel:82 C2 dur:4 shift:0      the bass (GM program 33), mezzo-forte

The vocabulary stays compact: 128 single-note tokens, the most common chords of
the training split, and one token per duration and per shift value. A chord
outside the vocabulary is written as its notes, one event each with shift 0, so
encoding is lossless either way (up to durations clipped at the maximum).

A corpus with labels (musicgen/labels.py) adds one control token per label,
`name=value`, right after <start>, in the vocabulary's order:

    <start> density=high key=D minor C4 dur:4 shift:4 ...

Controls are never generated: they come from the user (generate.py --condition).

A corpus with chord symbols (musicgen/chords.py) spells each as a harmony event,
first of the events at its onset:

    harmony:D7 dur:8 shift:0 A4 dur:2 shift:2 ...

An encoding with meters (musicgen/meters.py) spells each time signature as an
event of two tokens at the bar line where it begins, before all else there; a
piece with an upbeat begins with the rest of its bar, as the meter's shift:

    <start> meter:3/4 shift:8 D4 dur:4 shift:4 | meter:2/4 shift:0 ...

A vocabulary made for infilling (preprocess.py --infilling) has two markers
more, for the fill-in-the-middle training of language models (Bavarian et al.
2022), in its suffix-first order: a passage is trained, and asked for, as

    <start> [controls] <hole> gap after <fill> before middle

so a model that only reads left to right writes the middle knowing what follows
it, and yet as a continuation of what comes before it, which is what it does
best. `gap` is the middle's length in shift tokens (gap_tokens): unlike a text,
music must fill a gap of a given length for `after` to fall in place. (The
order before <hole> after <fill> middle, tried first, left the middle worse
predicted than with no `after` at all: docs/generating.md, "Infilling".)

A vocabulary may also hold merged tokens (preprocess.py --merges, musicgen/merges.py):
runs of tokens within one event, such as `C4+dur:4+shift:4`, each one model
step. Encoding writes every event with the fewest tokens it can; decoding
expands merged tokens back into their parts first.

Token strings are read here alone (through musicgen/tokens.py): the Vocabulary
parses its tokens once, into arrays from token id to what it means (its kind,
pitches, duration and shift steps, velocity, program, chord symbol code,
label, and for a merged token its parts), which every other module reads
instead of the strings.
"""

import copy
import difflib
import hashlib
import json

import numpy as np

from musicgen.chords import ChordSymbols
from musicgen.encoding import EncodingSettings, Event, EventTable, event_table
from musicgen.errors import UserError
from musicgen.merges import Segmenter
from musicgen.meters import KNOWN_METERS, bar_steps
from musicgen.notes import DEFAULT_VELOCITY, DRUMS, pitch_name
from musicgen.spelling import ABSENT, Spelling
from musicgen.tokens import (CONTROL_SEPARATOR, END, EVENT_KINDS, EVENT_PARTS, FILL, HOLE, KINDS, MERGE_SEPARATOR, PAD,
                             PITCHED_KINDS, SPECIAL_TOKENS, START, chord_name, control_token, duration_token,
                             harmony_token, instrument_token, meaning_of, merged_token, meter_token, shift_token,
                             velocity_token)
from musicgen.velocities import bin_middles, quantize_velocity

_SHIFT, _START = KINDS.index("shift"), KINDS.index("start")


class Vocabulary:
    """Token strings <-> ids, with the encoding settings they were made for, and what each token id means.

    Per token id (NumPy arrays, but `pitches`, `labels` and `parts`, which are lists):
    kinds (index into KINDS; "merged" for a merged token), first_kinds and last_kinds (a merged token's first and
    last part's), pitches (a tuple, () for tokens that sound none), strikes (bool, the 128 keys it strikes),
    duration_steps and shift_steps (0 but for tokens holding a duration or shift), ends_event (it holds an event's
    shift), velocities (0 but for tokens holding a velocity), programs and symbol_codes (-1 but for tokens holding
    an instrument or chord symbol), labels ((name, value) of a control token, else None), parts (the base token ids
    a token stands for: itself, or a merged token's parts).
    """

    def __init__(self, tokens, settings):
        self.tokens = list(tokens)
        self.settings = settings
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise UserError("vocabulary has duplicate tokens")
        if self.tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise UserError(f"vocabulary must start with {SPECIAL_TOKENS}")
        base = {token: meaning_of(token, settings) for token in self.tokens if not _is_merged(token)}
        meanings = [base[token] if token in base else self._merged_meaning(token, base) for token in self.tokens]
        self.meanings = meanings  # what each token says, as tokens.meaning_of has it (a merged token's parts too)
        self.kinds = np.array([KINDS.index(meaning["kind"]) for meaning in meanings], dtype=np.int64)
        for kind, wanted in (("instrument", settings.instruments), ("velocity", settings.velocity_bins > 0)):
            if wanted != (KINDS.index(kind) in self.kinds):
                raise UserError(f"vocabulary {kind} tokens do not match its settings")
        if KINDS.index("meter") in self.kinds and not settings.meters:
            raise UserError("vocabulary meter tokens do not match its settings")

        def column(name, missing):
            return np.array([meaning.get(name, missing) for meaning in meanings], dtype=np.int64)

        self.parts = [meaning.get("parts", (i,)) for i, meaning in enumerate(meanings)]
        self.first_kinds = np.array([self.kinds[parts[0]] for parts in self.parts], dtype=np.int64)
        self.last_kinds = np.array([self.kinds[parts[-1]] for parts in self.parts], dtype=np.int64)
        self.ends_event = self.last_kinds == _SHIFT
        self.pitches = [meaning.get("pitches", ()) for meaning in meanings]
        self.duration_steps = column("duration", 0)
        self.shift_steps = column("shift", 0)
        self.velocities = column("velocity", 0)
        self.programs = column("program", -1)
        self.symbol_codes = column("symbol", -1)
        self.labels = [meaning.get("label") for meaning in meanings]
        self.chords = {pitches for pitches, kind in zip(self.pitches, self.kinds) if KINDS[kind] == "chord"}
        self.symbols = {code: i for i, code in enumerate(self.symbol_codes.tolist())
                        if code >= 0 and KINDS[self.kinds[i]] == "harmony"}  # code -> its own token id
        self.meters = {meaning["meter"]: i for i, meaning in enumerate(meanings)
                       if meaning["kind"] == "meter"}  # (numerator, denominator) -> its token id
        # The grid steps of a bar of the meter each token names (merged tokens too), 0 for tokens naming none.
        self.bar_steps = np.array([bar_steps(*meaning["meter"], settings.steps_per_quarter) if "meter" in meaning
                                   else 0 for meaning in meanings], dtype=np.int64)
        # Which keys each token strikes, and which tokens move on to a new onset (a shift > 0, or <start>).
        self.strikes = np.zeros((len(self.tokens), 128), dtype=bool)
        for index, pitches in enumerate(self.pitches):
            self.strikes[index, list(pitches)] = True
        self.moves_on = (self.kinds == _START) | (self.shift_steps > 0)
        self._followers = np.zeros((len(KINDS), len(self.tokens)), dtype=bool)
        for kind, followers in self.grammar(settings).items():
            self._followers[KINDS.index(kind)] = np.isin(self.first_kinds, [KINDS.index(f) for f in followers])
        # The slots of keys that instrument tokens strike on: one per program, or one in all without instruments.
        self.program_slots = DRUMS + 1 if settings.instruments else 1
        self.event_starts = self._followers[_SHIFT] & (self.first_kinds != KINDS.index("end"))
        self._spelling = None  # made when first asked for: most vocabularies read are never encoded with
        self._segment = Segmenter({i: parts for i, parts in enumerate(self.parts) if len(parts) > 1})
        self._in_event = np.isin(self.kinds, [KINDS.index(kind) for kind in EVENT_PARTS])
        self._holds = np.zeros((len(KINDS), len(self.tokens)), dtype=bool)  # [kind, token]: a part of that kind
        for token, parts in enumerate(self.parts):
            self._holds[self.kinds[list(parts)], token] = True
        lengths = np.array([len(parts) for parts in self.parts], dtype=np.int64)
        self._part_ids = np.concatenate([np.asarray(parts, dtype=np.int64) for parts in self.parts])
        self._part_starts, self._part_lengths = np.cumsum(lengths) - lengths, lengths

    def _merged_meaning(self, token, base):
        """The meaning of a merged token from its parts' (base tokens of this vocabulary), which must be a run of
        one event as the grammar writes it, each kind at most once."""
        names = token.split(MERGE_SEPARATOR)
        if len(names) < 2 or any(name not in base for name in names):
            raise UserError(f"vocabulary token {token!r} is not a run of the vocabulary's own tokens")
        kinds = [base[name]["kind"] for name in names]
        grammar = self.grammar(self.settings)
        if (any(kind not in EVENT_PARTS for kind in kinds) or "shift" in kinds[:-1] or len(set(kinds)) < len(kinds)
                or any(second not in grammar[first] for first, second in zip(kinds, kinds[1:]))):
            raise UserError(f"vocabulary token {token!r} is not a run of tokens within one event")
        meaning = {key: value for name in names for key, value in base[name].items() if key != "kind"}
        return {**meaning, "kind": "merged", "parts": tuple(self.index[name] for name in names)}

    def restricted_to(self, programs):
        """This vocabulary with a grammar that allows only the instruments `programs` (for generating)."""
        if not self.settings.instruments:
            raise UserError("this model keeps no instruments, so there are none to choose from")
        restricted = copy.copy(self)
        banned = (self.programs >= 0) & ~np.isin(self.programs, sorted(programs))
        restricted._followers = self._followers & ~banned
        restricted.event_starts = self.event_starts & ~banned
        return restricted

    @staticmethod
    def grammar(settings):
        """Which kinds may follow which: an event is [instrument] [velocity] what duration shift.

        The instrument and velocity tokens come only before notes and chords (a
        rest or chord symbol has neither), and only where the settings keep them, then always.
        """
        pitched = ("velocity",) if settings.velocity_bins else PITCHED_KINDS
        event_start = (("instrument",) if settings.instruments else pitched) + ("rest", "end")
        event_start += ("harmony",) + (("meter",) if settings.meters else ())
        return {
            "pad": ("start",),
            "start": event_start + ("control",),
            "control": event_start + ("control",),
            "shift": event_start,
            "instrument": pitched,
            "velocity": PITCHED_KINDS,
            "rest": ("duration",),
            "note": ("duration",),
            "chord": ("duration",),
            "harmony": ("duration",),
            "meter": ("shift",),
            "duration": ("shift",),
            "end": ("start",),
            "hole": event_start,
            "fill": event_start,
        }

    @classmethod
    def build(cls, settings, chord_counts, max_chords=1024, min_chord_count=2, controls=(), infilling=False,
              symbols=(), merges=(), meters=()):
        """The vocabulary for `settings`, with the most frequent chords of the training data, where the settings
        keep meters a token for each of `meters` ((numerator, denominator)) among meters.KNOWN_METERS, the
        infilling markers if asked for, a token for each chord symbol code in `symbols`, the control tokens
        `controls` (label=value strings), sorted, and last the merged tokens `merges` (tuples of token strings),
        in order."""
        chords = [c for c, n in sorted(chord_counts.items(), key=lambda item: (-item[1], item[0])) if n >= min_chord_count]
        tokens = list(SPECIAL_TOKENS)
        tokens += [pitch_name(p) for p in range(128)]
        tokens += [chord_name(c) for c in chords[:max_chords]]
        tokens += [duration_token(n) for n in range(1, settings.max_duration_steps + 1)]
        tokens += [shift_token(n) for n in range(settings.max_shift_steps + 1)]
        if settings.instruments:
            tokens += [instrument_token(program) for program in range(DRUMS + 1)]
        if settings.velocity_bins:
            tokens += [velocity_token(v) for v in bin_middles(settings.velocity_bins).tolist()]
        if settings.meters:
            tokens += [meter_token(*meter) for meter in KNOWN_METERS if meter in set(map(tuple, meters))]
        if infilling:
            tokens += [HOLE, FILL]
        tokens += [harmony_token(code) for code in sorted(set(symbols))]
        return cls(tokens + sorted(set(controls)) + [merged_token(parts) for parts in merges], settings)

    def __len__(self):
        return len(self.tokens)

    @property
    def pad_id(self):
        return self.index[PAD]

    @property
    def start_id(self):
        return self.index[START]

    @property
    def end_id(self):
        return self.index[END]

    @property
    def hole_id(self):
        return self.index[HOLE]

    @property
    def fill_id(self):
        return self.index[FILL]

    @property
    def merged(self):
        """How many merged tokens the vocabulary holds."""
        return int((self.kinds == KINDS.index("merged")).sum())

    def note_id(self, pitch):
        """The token of a single note of MIDI pitch `pitch`."""
        return self.index[pitch_name(pitch)]

    def duration_id(self, steps):
        return self.index[duration_token(steps)]

    def shift_id(self, steps):
        return self.index[shift_token(steps)]

    def control_id(self, name, value):
        """The token of label `name` = `value`, or None where the vocabulary has none."""
        return self.index.get(control_token(name, value))

    def kind(self, token_id):
        return KINDS[self.kinds[token_id]]

    def holds(self, *kinds):
        """Boolean per token id: whether it is, or (merged) holds, a token of one of `kinds`."""
        return self._holds[[KINDS.index(kind) for kind in kinds]].any(axis=0)

    @property
    def controls(self):
        """{label: [values]} of the control tokens, in vocabulary order."""
        labels = {}
        for label in self.labels:
            if label is not None:
                labels.setdefault(label[0], []).append(label[1])
        return labels

    @property
    def infilling(self):
        """Whether the vocabulary has the infilling markers."""
        return HOLE in self.index

    @property
    def is_control(self):
        """Boolean per token id: whether it is a control token."""
        return self.kinds == KINDS.index("control")

    def gap_tokens(self, steps):
        """Shift tokens that move on `steps` grid steps together, the largest first: how long a gap to fill is."""
        largest = self.settings.max_shift_steps
        parts = [largest] * (steps // largest) + ([steps % largest] if steps % largest or not steps else [])
        return [self.shift_id(part) for part in parts]

    def opening_length(self, ids):
        """How many tokens open `ids` as a piece: <start> and the control tokens after it (0 without <start>)."""
        ids = np.asarray(ids)
        if not len(ids) or ids[0] != self.start_id:
            return 0
        rest = ~self.is_control[ids[1:]]
        return 1 + (int(np.argmax(rest)) if rest.any() else len(ids) - 1)

    def control_ids(self, conditions):
        """{label: value} -> the control token ids, in vocabulary order; unknown labels and values are refused
        with the known ones (matched without regard to case)."""
        known = self.controls
        if conditions and not known:
            raise UserError("this model was trained without labels, so it takes no --condition "
                            "(label a corpus with preprocess.py --label-from, --labels or --compute-labels)")
        ids = []
        for name, value in conditions.items():
            if name not in known:
                raise UserError(f"unknown label {name!r}; this model knows: {', '.join(known)}")
            matches = [v for v in known[name] if v.lower() == str(value).strip().lower()]
            if not matches:
                raise UserError(f"{name}={value!r} was never seen in training; known values of {name}: "
                                f"{', '.join(known[name])}")
            ids.append(self.control_id(name, matches[0]))
        return sorted(ids)

    def hash(self):
        """A short fingerprint of tokens and settings: checkpoints record it to catch mismatches."""
        payload = json.dumps({"tokens": self.tokens, "settings": self.settings.to_json()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self):
        return {
            "format": "musicgen-vocabulary",
            "version": 1,
            "hash": self.hash(),
            "settings": self.settings.to_json(),
            "encoding": self.settings.describe(),
            "tokens": self.tokens,
        }

    @classmethod
    def from_json(cls, data):
        """Validate and load a vocabulary read from JSON (which may come from anyone)."""
        if not isinstance(data, dict) or data.get("format") != "musicgen-vocabulary":
            raise UserError("not a musicgen vocabulary (missing 'format': 'musicgen-vocabulary')")
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or len(tokens) > 1_000_000:
            raise UserError("vocabulary tokens must be a list of strings")
        vocabulary = cls(tokens, EncodingSettings.from_json(data.get("settings")))
        if "hash" in data and data["hash"] != vocabulary.hash():
            raise UserError("vocabulary hash does not match its tokens (the file was edited or damaged)")
        return vocabulary

    def encode(self, events, start=True, end=True, controls=()):
        """Events -> token ids, with the `controls` ids after <start>, each event in as few tokens as the vocabulary
        has (merged tokens where it has them). Chords outside the vocabulary must already be split
        (notes_to_events does)."""
        return self.encode_table(EventTable.from_events(events), controls, start, end)

    def encode_table(self, table, controls=(), start=True, end=True):
        """An EventTable (musicgen/encoding.py) -> token ids, as `encode` says, in whole arrays."""
        columns = self.event_columns(table)
        ids = columns[columns != ABSENT]  # row by row: event by event
        if self.merged:
            ids = self.merge(ids)
        return np.concatenate([[self.start_id] if start else [], sorted(controls), ids,
                               [self.end_id] if end else []]).astype(np.int32)

    def event_columns(self, table):
        """The base token ids of each event of an EventTable, a row each (musicgen/spelling.py)."""
        if self._spelling is None:
            self._spelling = Spelling(self)
        return self._spelling.columns(table)

    def merge(self, ids):
        """Token ids with every event written in as few tokens as the vocabulary has: what encode gives."""
        ids = np.asarray(ids).tolist()
        merged, begin = [], 0
        run_ends = (self.ends_event | ~self._in_event).tolist()
        for position, token in enumerate(ids):
            if run_ends[token] or position == len(ids) - 1:
                merged += self._segment(ids[begin:position + 1])
                begin = position + 1
        return np.array(merged, dtype=np.int32)

    def expand(self, ids):
        """Token ids with every merged token written as its parts: base tokens only."""
        ids = np.asarray(ids, dtype=np.int64)
        lengths = self._part_lengths[ids]
        positions = np.repeat(self._part_starts[ids] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return self._part_ids[positions].astype(np.int32)

    def known_symbols(self, symbols):
        """The ChordSymbols of `symbols` that the vocabulary has a token for."""
        if not len(symbols):
            return symbols
        return symbols.where(np.isin(symbols.codes, list(self.symbols)))

    def known_meters(self, meters):
        """The meters (rows of grid step, numerator, denominator) that the vocabulary has a token for: none where it
        keeps no meters."""
        meters = np.asarray(meters, dtype=np.int64).reshape(-1, 3)
        return meters[[tuple(row) in self.meters for row in meters[:, 1:].tolist()]]

    def encode_notes(self, notes, controls=(), symbols=ChordSymbols.none(), meters=()):
        """Notes (and ChordSymbols, and meters) -> (token ids of the whole piece, number of events, number of
        clipped notes). Meters the vocabulary has no token for are left out."""
        table = event_table(notes, self.settings, self.chords, symbols, self.known_meters(meters))
        return self.encode_table(table, controls), len(table), table.clipped

    def quantized_velocity(self, velocity):
        """The velocity a note of MIDI velocity `velocity` is encoded with: its bin's middle."""
        return int(quantize_velocity(velocity, self.settings.velocity_bins))

    def decode(self, ids):
        """Token ids -> events. Tokens that break the event grammar are skipped, not fatal.

        Where the settings keep instruments and velocities, a note event without
        them (a hand-written seed, say) takes program 0 and velocity 80.
        """
        events = []
        what, duration, velocity, program, symbol, meter = None, None, None, None, None, None
        meter_of = {token: meter for meter, token in self.meters.items()}
        kinds = self.kinds
        for token_id in self.expand(ids).tolist():
            kind = KINDS[kinds[token_id]]
            if kind == "instrument":
                what, duration, velocity, program, symbol, meter = None, None, None, int(self.programs[token_id]), None, None
            elif kind == "velocity":
                what, duration, velocity, symbol, meter = None, None, int(self.velocities[token_id]), None, None
            elif kind in EVENT_KINDS:
                what, duration, symbol, meter = self.pitches[token_id], None, None, None
            elif kind == "harmony":
                what, duration, velocity, program, symbol, meter = (), None, None, None, int(self.symbol_codes[token_id]), None
            elif kind == "meter":
                what, duration, velocity, program, symbol, meter = (), 0, None, None, None, meter_of[token_id]
            elif kind == "duration" and what is not None and meter is None:
                duration = int(self.duration_steps[token_id])
            elif kind == "shift" and what is not None and duration is not None:
                if what:
                    velocity = DEFAULT_VELOCITY if velocity is None and self.settings.velocity_bins else velocity
                    program = 0 if program is None and self.settings.instruments else program
                else:
                    velocity, program = None, None
                events.append(Event(what, duration, int(self.shift_steps[token_id]), velocity, program, symbol, meter))
                what, duration, velocity, program, symbol, meter = None, None, None, None, None, None
            else:
                what, duration, velocity, program, symbol, meter = None, None, None, None, None, None
        return events

    def allowed_next(self, previous_ids):
        """Boolean mask (batch, vocabulary): which tokens the grammar allows after each previous token."""
        return self._followers[self.last_kinds[np.asarray(previous_ids)]]

    def event_boundaries(self, ids):
        """Positions i such that ids[:i] ends on a whole event (after <start> or a token ending an event)."""
        ids = np.asarray(ids)
        return np.flatnonzero(self.ends_event[ids] | (self.kinds[ids] == _START)) + 1

    def nearest_tokens(self, token, count=3):
        """Tokens spelled most like `token`, for 'did you mean' messages."""
        return difflib.get_close_matches(token, self.tokens, n=count, cutoff=0.0)


def _is_merged(token):
    """Whether a token string spells a merged token (control tokens, which may hold "+", are never merged)."""
    return MERGE_SEPARATOR in token and CONTROL_SEPARATOR not in token
