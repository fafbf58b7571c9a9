#!/bin/sh
# Reproduce the shipped models: pretrained/styles (eleven styles, from music21's bundled corpus and the shared
# folk tunes, steered by --condition style=... key=... density=...), pretrained/bach (the default corpus,
# music21's Bach chorales) and pretrained/folk (the Nottingham folk tunes: melodies, with a chord symbol
# inferred for each bar or half bar). Each trains beside an n-gram on the same splits, and the evaluation
# report of both goes in as evaluation.md. Why these lengths, and the times on a 2-core CPU:
# docs/pretrained.md, "The shipped models".
#
#     SHARED=path/to/shared/data pretrained/make.sh
#
# SHARED: this project's shared data (default: ../shared/data): nottingham/, the 1,034 MIDI files of the
# Nottingham database as cleaned by the jukedeck project, and abc/irish.abc, the MIT deep-learning music lab's
# Irish tunes. The styles model takes hours on a 2-core CPU; each train.py line, run again, resumes where it
# stopped (after Ctrl-C or a crash).
set -e
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}

ship() {  # ship RUN NGRAM NAME [EVALUATE.PY FLAGS]: export the run, evaluate it against the n-gram, keep the report
    run=$1 ngram=$2 name=$3
    shift 3
    python train.py --run-name "$run" --ship "pretrained/$name"
    python evaluate.py --checkpoint "pretrained/$name" --checkpoint "checkpoints/$ngram" --no-baseline \
        --random-seed 0 --output "evaluation/pretrained-$name" "$@"
    cp "evaluation/pretrained-$name/report.md" "pretrained/$name/evaluation.md"
}

python preprocess.py --corpus bach --output data/bach-default --workers 2   # the default corpus; near-duplicates kept in one split
python train.py --data data/bach-default --run-name bach-pretrained --epochs 25 --patience 3
python train.py --data data/bach-default --run-name bach-pretrained --epochs 60 --patience 3   # on, at the floor
python train.py --model ngram --data data/bach-default --run-name bach-default-ngram
ship bach-pretrained bach-default-ngram bach

python preprocess.py --input "$SHARED/nottingham" --output data/folk --workers 2 --melody-only --chord-symbols infer --dedupe
python train.py --data data/folk --run-name folk-pretrained --epochs 10 --patience 3
python train.py --data data/folk --run-name folk-pretrained --epochs 30 --patience 3   # on, at the floor
python train.py --model ngram --data data/folk --run-name folk-ngram
ship folk-pretrained folk-ngram folk

python -m musicgen.styles data/styles --shared "$SHARED"
python preprocess.py --input data/styles --output data/styles-processed --label-from folders=style \
    --compute-labels key,density --dedupe --workers 2
python train.py --data data/styles-processed --run-name styles --epochs 8 --patience 3 --seq-len 256 --batch-size 8
python train.py --model ngram --data data/styles-processed --run-name styles-ngram
ship styles styles-ngram styles --by style
