#!/bin/sh
# Install what musicgen needs: the Python packages, and from the system's packages where apt-get is
# available, FluidSynth with a General MIDI SoundFont (for generate.py --wav) and Graphviz (for
# train.py --summary's model.png). Without them --wav still works, with plain sine waves, and
# --summary prints the layers without drawing them; on macOS: brew install fluid-synth graphviz,
# and pass --soundfont.
set -e
cd "$(dirname "$0")"
if command -v apt-get >/dev/null 2>&1 && ! { command -v fluidsynth >/dev/null 2>&1 && [ -e /usr/share/sounds/sf2/default-GM.sf2 ] && command -v dot >/dev/null 2>&1; }; then
    if [ "$(id -u)" = 0 ]; then as_root=""; else as_root="sudo"; fi
    { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm graphviz >/dev/null; } \
        || echo "install.sh: could not install fluidsynth, fluid-soundfont-gm and graphviz; generate.py --wav will use sine waves, train.py --summary will not draw model.png"
fi
pip install -r requirements.txt
