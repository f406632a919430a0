"""TensorFlow's native start-up lines, written to file descriptor 2 by C++ before any Python or
absl logging setting applies ("oneDNN custom operations are on", "Could not find cuda drivers",
"failed call to cuInit": the CUDA probe of a CPU-only machine). They look like failures in a demo
and no environment variable silences them in TF 2.21, so the driver's Keras build runs with fd 2
captured, and every line that is not one of these known notices is written back."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

KNOWN_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"Could not find cuda drivers|failed call to cuInit|cuda_platform\.cc|cudart_stub\.cc|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"This TensorFlow binary is optimized to use available CPU instructions|"
    r"rebuild TensorFlow with the appropriate compiler flags|TF-TRT Warning"
)


@contextlib.contextmanager
def tensorflow_notices_dropped():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not KNOWN_NOTICES.search(line):
                    print(line, file=sys.stderr)
