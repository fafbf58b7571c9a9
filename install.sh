#!/bin/sh
# Install what musicgen needs: the Python packages, and (for generate.py --wav) FluidSynth with a
# General MIDI SoundFont from the system's packages where apt-get is available. Without them
# --wav still works, with plain sine waves; on macOS: brew install fluid-synth, and pass --soundfont.
set -e
cd "$(dirname "$0")"
if command -v apt-get >/dev/null 2>&1 && ! { command -v fluidsynth >/dev/null 2>&1 && [ -e /usr/share/sounds/sf2/default-GM.sf2 ]; }; then
    if [ "$(id -u)" = 0 ]; then as_root=""; else as_root="sudo"; fi
    { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm >/dev/null; } \
        || echo "install.sh: could not install fluidsynth and fluid-soundfont-gm; generate.py --wav will use sine waves"
fi
pip install -r requirements.txt
