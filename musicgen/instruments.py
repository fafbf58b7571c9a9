"""General MIDI instruments by name: what seeds and --instruments may say.

A name is a program number (0-127), `drums`, one of the 128 General MIDI names
written with hyphens (`electric-bass-finger`, `acoustic-grand-piano`), or one of
the 16 General MIDI families (`piano`, `bass`, `guitar`, `strings`, `brass`,
...). A family stands for its eight programs where a set is asked for
(--instruments) and for its first program where one instrument is (a seed).
"""

import re

from musicgen.errors import UserError
from musicgen.notes import DRUMS

FAMILIES = ["piano", "chromatic-percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed", "pipe",
            "synth-lead", "synth-pad", "synth-effects", "ethnic", "percussive", "sound-effects"]


def instrument_name(program):
    """'Drums' or the General MIDI name of a program, e.g. 'Electric Bass (finger)'."""
    import pretty_midi

    return "Drums" if program == DRUMS else pretty_midi.program_to_instrument_name(int(program))


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def programs_named(name):
    """The programs a name stands for: one, or a family's eight; UserError if it names none."""
    slug = _slug(name)
    if slug.isdigit() and 0 <= int(slug) <= 127:
        return [int(slug)]
    if slug in ("drums", "drum-kit", "percussion-kit"):
        return [DRUMS]
    if slug in FAMILIES:
        first = FAMILIES.index(slug) * 8
        return list(range(first, first + 8))
    for program in range(128):
        if _slug(instrument_name(program)) == slug:
            return [program]
    raise UserError(f"{name!r} is not a General MIDI instrument: give a program 0-127, drums, a family "
                    f"({', '.join(FAMILIES[:6])}, ...) or a name like electric-bass-finger")


def program_named(name):
    """The one program a name stands for (a family's first)."""
    return programs_named(name)[0]


def parse_instrument_list(text):
    """'piano,bass,drums' -> the set of programs they stand for."""
    programs = set()
    for name in text.split(","):
        if name.strip():
            programs.update(programs_named(name.strip()))
    if not programs:
        raise UserError(f"--instruments takes names like piano,bass,drums, got {text!r}")
    return programs
