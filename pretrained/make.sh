#!/bin/sh
# Reproduce the shipped models: pretrained/bach (the default corpus, music21's Bach chorales) and
# pretrained/folk (the Nottingham folk tunes: melodies, with a chord symbol inferred for each bar or half
# bar). Each trains along a cosine schedule as long as the one that did best on its validation data,
# then goes on at the schedule's floor until its validation loss stops improving (early stopping), beside
# an n-gram on the same splits; the evaluation report of both goes in as evaluation.md. Why these lengths,
# and the times on a 2-core CPU: docs/pretrained.md, "The shipped models".
#
#     NOTTINGHAM=path/to/nottingham/midi pretrained/make.sh
#
# NOTTINGHAM: the 1,034 MIDI files of the Nottingham database as cleaned by the jukedeck project
# (default: ../shared/data/nottingham, where this project's machines keep them).
set -e
cd "$(dirname "$0")/.."
NOTTINGHAM=${NOTTINGHAM:-../shared/data/nottingham}

ship() {  # ship RUN NGRAM NAME: export the run, evaluate it against the n-gram, keep the report
    python train.py --run-name "$1" --ship "pretrained/$3"
    python evaluate.py --checkpoint "pretrained/$3" --checkpoint "checkpoints/$2" --no-baseline \
        --random-seed 0 --output "evaluation/pretrained-$3"
    cp "evaluation/pretrained-$3/report.md" "pretrained/$3/evaluation.md"
}

python preprocess.py --output data/bach-default --workers 2   # near-duplicate chorales kept in one split
python train.py --data data/bach-default --run-name bach-pretrained --epochs 25 --patience 3
python train.py --data data/bach-default --run-name bach-pretrained --epochs 60 --patience 3   # on, at the floor
python train.py --model ngram --data data/bach-default --run-name bach-default-ngram
ship bach-pretrained bach-default-ngram bach

python preprocess.py --input "$NOTTINGHAM" --output data/folk --workers 2 --melody-only --chord-symbols infer --dedupe
python train.py --data data/folk --run-name folk-pretrained --epochs 10 --patience 3
python train.py --data data/folk --run-name folk-pretrained --epochs 30 --patience 3   # on, at the floor
python train.py --model ngram --data data/folk --run-name folk-ngram
ship folk-pretrained folk-ngram folk
