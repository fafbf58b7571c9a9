"""Import TensorFlow without its start-up noise on stderr.

On a CPU-only machine TensorFlow 2.21 prints, however TF_CPP_MIN_LOG_LEVEL is set:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc] Could not find cuda drivers on your machine, GPU will not be used.

twice (libtensorflow_framework and the profiler plugin each carry a copy of the logging
code), because these come from static initialisers that run while `import tensorflow`
loads the libraries, before TensorFlow reads TF_CPP_MIN_LOG_LEVEL; no environment variable
reaches them. Then, when the devices are first listed (at the first op unless earlier),

    E0000 ... cuda_platform.cc] failed call to cuInit: ... UNKNOWN ERROR (303)

which only TF_CPP_MIN_LOG_LEVEL=3 hides, together with every real C++ error.

So import_tensorflow() sets TF_CPP_MIN_LOG_LEVEL=2 unless the user chose a level, and
while it imports TensorFlow and lists the devices it sends file descriptor 2 to a
temporary file, then writes what was caught back to stderr minus the lines the chosen
level should have hidden and the failed cuInit or duplicate CUDA plugin registration that
only mean "no GPU here". Everything else -- Python warnings and exceptions, real errors --
still reaches stderr. TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's output untouched. GPUs are
not hidden, only listed: tf.config (visible devices, memory growth) can still be set afterwards.
"""

import os
import re
import sys
import tempfile

LOG_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+ +\d+ [^\]]+\] (.*)")  # absl: severity, date, time, thread, file:line]
NO_GPU = re.compile(r"failed call to cuInit: .*(UNKNOWN ERROR \(303\)|CUDA_ERROR_NO_DEVICE)"
                    r"|Unable to register cu(DNN|FFT|BLAS) factory")
ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def import_tensorflow():
    """Import TensorFlow quietly (see the module docstring) and return it; import it before keras.

    Slow (seconds), so CLIs call it once arguments are parsed, before importing anything
    that imports TensorFlow or keras. Calling it again, or after TensorFlow is imported,
    just returns the module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2").strip()
    level = int(level) if level.isdigit() else 0
    if level == 0:
        import tensorflow
        return tensorflow
    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        stderr = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow
            tensorflow.config.list_physical_devices()  # the cuInit line comes here, not at the first op
        finally:
            sys.stderr.flush()
            os.dup2(stderr, 2)
            os.close(stderr)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _noise(line, level)))
            sys.stderr.flush()
    return tensorflow


def _noise(line, level):
    """Whether `line` is below TF_CPP_MIN_LOG_LEVEL `level` (logged before TensorFlow read it) or only says "no GPU"."""
    log = LOG_LINE.match(line)
    if log:
        return "IWEF".index(log[1]) < level or bool(NO_GPU.search(log[2]))
    return line.rstrip("\n") == ABSL_PREAMBLE
