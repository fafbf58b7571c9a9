"""Merged tokens: runs of tokens within one event that are common enough to be one model step each.

An event is three to five tokens ([instrument] [velocity] what duration shift),
so a note costs the model three to five steps. Byte-pair encoding, as MidiTok 3
applies it to its tokens, learns from the training split which adjacent tokens
come together most often and gives each such pair one token, again and again;
here a merge never crosses an event's end, so a merged token is always a piece
of one event (often all of it: `C4+dur:4+shift:4`), and what it means is plain:
a note, its duration, the time to the next one. A chorale's note then costs
about one step, and the model sees a whole piece in a window that held 40 notes.

learn_merges finds them (word-level BPE, the events being the words);
Segmenter writes an event with as few tokens as the vocabulary allows.
"""

import heapq
from collections import Counter, defaultdict

def learn_merges(event_counts, count, min_count=2):
    """Up to `count` merged tokens, most useful first: {event (a tuple of token strings): times seen} -> a list of
    tuples of token strings, each the parts of one merged token.

    Each round merges the pair of adjacent tokens (or merged tokens) that occurs most often within the events,
    counted with their multiplicity; ties go to the pair that spells first. A pair seen fewer than `min_count`
    times is not worth a token: learning stops there. The counts are kept up to date for the events a merge
    changes only, and the most frequent pair is found through a heap, so learning takes seconds on a corpus of
    many distinct events.
    """
    words = {event: [(token,) for token in event] for event in event_counts}
    pairs, holders = Counter(), defaultdict(set)
    for event, times in event_counts.items():
        for pair in zip(words[event], words[event][1:]):
            pairs[pair] += times
            holders[pair].add(event)
    heap = [(-times, pair) for pair, times in pairs.items()]
    heapq.heapify(heap)
    merged = []
    while len(merged) < count and heap:
        negative, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -negative:
            continue  # a stale entry: the pair's count has changed since
        if -negative < min_count:
            break
        merged.append(pair[0] + pair[1])
        changed = set()
        for event in list(holders.pop(pair, ())):
            word, weight = words[event], event_counts[event]
            for old in zip(word, word[1:]):
                pairs[old] -= weight
                holders[old].discard(event)
                changed.add(old)
            words[event] = word = _joined(word, *pair)
            for new in zip(word, word[1:]):
                pairs[new] += weight
                holders[new].add(event)
                changed.add(new)
        for key in changed:
            if pairs[key] > 0:
                heapq.heappush(heap, (-pairs[key], key))
            else:
                del pairs[key]
    return merged


def _joined(word, left, right):
    """`word` (a list of token tuples) with every adjacent `left`, `right` joined into one."""
    joined, index = [], 0
    while index < len(word):
        if index + 1 < len(word) and word[index] == left and word[index + 1] == right:
            joined.append(left + right)
            index += 2
        else:
            joined.append(word[index])
            index += 1
    return joined


class Segmenter:
    """Writes a run of base token ids with the fewest tokens of a vocabulary, merged ones included.

    Of equally short ways, the one of lower token ids (the more frequent merges) is taken, so writing is
    deterministic. Each distinct run is worked out once and remembered: a corpus has few distinct events.
    """

    def __init__(self, parts_of):
        """`parts_of`: {merged token id: tuple of the base token ids it stands for}."""
        self.by_parts = {parts: token for token, parts in parts_of.items()}
        self.longest = max((len(parts) for parts in self.by_parts), default=1)
        self.known = {}

    def __call__(self, run):
        run = tuple(run)
        if run not in self.known:
            self.known[run] = self._fewest(run)
        return self.known[run]

    def _fewest(self, run):
        best = [(0, ())] + [None] * len(run)  # best[i]: (tokens, ids) writing run[:i]
        for end in range(1, len(run) + 1):
            for begin in range(max(0, end - self.longest), end):
                piece = run[begin:end]
                token = piece[0] if len(piece) == 1 else self.by_parts.get(piece)
                if token is None or best[begin] is None:
                    continue
                candidate = (best[begin][0] + 1, best[begin][1] + (token,))
                if best[end] is None or candidate < best[end]:
                    best[end] = candidate
        return list(best[-1][1])
