"""Rendering MIDI files to WAV: FluidSynth with a General MIDI SoundFont, else plain sine waves.

FluidSynth and a SoundFont come from the system's packages (Debian/Ubuntu:
`apt-get install fluidsynth fluid-soundfont-gm`; macOS: `brew install
fluid-synth` plus any .sf2 file passed with --soundfont). Without them the WAV
is still written, with pretty_midi's sine-wave synthesis: every instrument
sounds like an organ, but timing and pitches can be checked by ear.
"""

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from musicgen.errors import UserError
from musicgen.files import atomic_path

# Where Linux distributions and Homebrew put a General MIDI SoundFont, most specific first.
SOUNDFONT_LOCATIONS = (
    "/usr/share/sounds/sf2/default-GM.sf2",  # Debian and Ubuntu: fluid-soundfont-gm (an alternatives link)
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",  # Fedora, Arch
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
SAMPLE_RATE = 44100
RELEASE_SECONDS = 0.5  # sound kept after the last note ends
PEAK_LEVEL = 0.8  # every file is scaled to this peak, so quiet pieces are as audible as loud ones


def find_soundfont(requested=None):
    """The SoundFont to use: `requested` (which must exist), else the first system one found, else None."""
    if requested is not None:
        if not Path(requested).is_file():
            raise UserError(f"soundfont {requested} does not exist")
        return Path(requested)
    return next((Path(p) for p in SOUNDFONT_LOCATIONS if Path(p).is_file()), None)


def render_wav(midi_path, wav_path, soundfont=None, warn=print):
    """Render `midi_path` to a 16-bit WAV at `wav_path` (atomically); returns how it was rendered.

    Falls back to sine waves, with a one-line warning through `warn`, when
    FluidSynth or a SoundFont is missing or FluidSynth fails on this file. The
    sound is cut RELEASE_SECONDS after the last note ends (with a fade), so the
    WAV lasts as long as the MIDI (FluidSynth adds seconds of reverb), and
    scaled to PEAK_LEVEL.
    """
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(midi_path))
    fluidsynth = shutil.which("fluidsynth")
    soundfont = find_soundfont(soundfont)
    samples, method = None, "sine waves (pretty_midi)"
    if fluidsynth and soundfont:
        samples, problem = _render_with_fluidsynth(fluidsynth, soundfont, midi_path, midi.get_end_time())
        if samples is None:
            warn(f"warning: FluidSynth failed on {midi_path} ({problem}); rendering sine waves instead")
        else:
            method = f"FluidSynth with {soundfont.name}"
    else:
        missing = " and ".join(name for name, found in (("FluidSynth", fluidsynth), ("a General MIDI SoundFont", soundfont))
                               if not found)
        warn(f"warning: {missing} not found; rendering sine waves "
             "(install fluidsynth and fluid-soundfont-gm, or pass --soundfont, for real instruments)")
    if samples is None:
        samples = midi.synthesize(fs=SAMPLE_RATE)[:, None]
    samples = _cut_after(samples, midi.get_end_time() + RELEASE_SECONDS)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    write_wav(wav_path, samples * (PEAK_LEVEL / peak) if peak > 0 else samples, SAMPLE_RATE)
    return method


def _render_with_fluidsynth(fluidsynth, soundfont, midi_path, seconds):
    """(samples of shape (frames, channels) in -1..1, None), or (None, what went wrong)."""
    with tempfile.TemporaryDirectory(prefix="musicgen-wav-") as folder:
        rendered = Path(folder) / "fluidsynth.wav"
        command = [fluidsynth, "-n", "-i", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE), "-T", "wav", "-O", "s16",
                   "-F", str(rendered), str(soundfont), str(midi_path)]
        try:
            finished = subprocess.run(command, capture_output=True, text=True, timeout=30 + seconds)
        except subprocess.TimeoutExpired:
            return None, "it took too long"
        if finished.returncode != 0 or not rendered.is_file():
            lines = (finished.stderr or finished.stdout).strip().splitlines()
            return None, lines[-1] if lines else f"exit code {finished.returncode}, no audio written"
        try:
            samples, _ = read_wav(rendered)
        except (OSError, EOFError, ValueError, wave.Error) as error:
            return None, f"unreadable output: {error}"
    return samples, None


def _cut_after(samples, seconds, fade_seconds=0.25):
    """The first `seconds` of `samples`, faded out over the last `fade_seconds`."""
    samples = samples[: int(seconds * SAMPLE_RATE)].copy()
    fade = min(len(samples), int(fade_seconds * SAMPLE_RATE))
    if fade:
        samples[-fade:] *= np.linspace(1, 0, fade)[:, None]
    return samples


def write_wav(path, samples, sample_rate):
    """Float samples in -1..1, shape (frames, channels) -> 16-bit PCM WAV, written atomically."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with atomic_path(path) as temporary:
        with wave.open(str(temporary), "wb") as handle:
            handle.setnchannels(pcm.shape[1])
            handle.setsampwidth(2)
            handle.setframerate(sample_rate)
            handle.writeframes(pcm.tobytes())


def read_wav(path):
    """(float samples in -1..1 of shape (frames, channels), sample rate) of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit samples, got {8 * handle.getsampwidth()}-bit")
        frames = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        return frames.reshape(-1, handle.getnchannels()) / 32768.0, handle.getframerate()
