"""Musical statistics of decoded notes and events, for comparing generated music with real music."""

import numpy as np

from musicgen.encoding import PITCH, events_to_notes


def pitch_class_histogram(notes):
    """Share of notes in each of the 12 pitch classes (C, C#, ..., B)."""
    counts = np.bincount(np.asarray(notes)[:, PITCH] % 12, minlength=12).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def duration_histogram(events, max_steps):
    """Share of note and chord events with each duration 1..max_steps (rests are left out)."""
    counts = np.zeros(max_steps, dtype=np.float64)
    for event in events:
        if event.pitches:
            counts[min(event.duration, max_steps) - 1] += 1
    return counts / max(counts.sum(), 1.0)


def total_variation(p, q):
    """Half the L1 distance between two distributions: 0 identical, 1 disjoint."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def corpus_histograms(pieces_events, max_steps):
    """Pitch-class and duration histograms of many pieces pooled together."""
    notes = [events_to_notes(events) for events in pieces_events]
    notes = np.concatenate([n for n in notes if len(n)]) if any(len(n) for n in notes) else np.zeros((0, 3), int)
    events = [event for piece in pieces_events for event in piece]
    return pitch_class_histogram(notes), duration_histogram(events, max_steps)
