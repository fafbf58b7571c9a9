#!/bin/sh
# Install what musicgen needs: the Python packages, and from the system's packages where apt-get is
# available, FluidSynth with a General MIDI SoundFont (for generate.py --wav) and Graphviz (for
# train.py --summary's model.png). Without them --wav still works, with plain sine waves, and
# --summary prints the layers without drawing them; on macOS: brew install fluid-synth graphviz,
# and pass --soundfont.
#
#     ./install.sh            what running musicgen needs
#     ./install.sh --tests    and MuseScore 3, for the test that MuseScore reads our sheet music as we wrote it, and
#                             Chromium with its driver, for the tests that use app.py's page in a real browser
set -e
cd "$(dirname "$0")"
packages="fluidsynth fluid-soundfont-gm graphviz"
missing=""
command -v fluidsynth >/dev/null 2>&1 && [ -e /usr/share/sounds/sf2/default-GM.sf2 ] || missing="yes"
command -v dot >/dev/null 2>&1 || missing="yes"
if [ "${1:-}" = "--tests" ]; then
    packages="$packages musescore3 chromium chromium-driver"
    command -v mscore3 >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || missing="yes"
fi
if command -v apt-get >/dev/null 2>&1 && [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then as_root=""; else as_root="sudo"; fi
    { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $packages >/dev/null; } \
        || echo "install.sh: could not install $packages; generate.py --wav will use sine waves," \
                "train.py --summary will not draw model.png, and the MuseScore and browser tests (if asked for) will skip"
fi
pip install -r requirements.txt
