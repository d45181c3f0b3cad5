"""``ngm-jax run`` on a disk that fills up while it trains.

``full_disk.py N run ARGS...``: the run's first N checkpoints are written as
usual; from the next one on, no file may grow past 64 KiB (RLIMIT_FSIZE,
SIGXFSZ ignored), so the kernel refuses orbax's writes of the carry with
EFBIG, as a full disk refuses them with ENOSPC. tests/test_resume.py checks
the message and that the run then resumes from what was saved before.
"""

import resource
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ngm_jax import checkpoint  # pylint: disable=g-import-not-at-top
from ngm_jax.cli import main  # pylint: disable=g-import-not-at-top

ALLOWED = int(sys.argv.pop(1))
_save = checkpoint.RunCheckpoints.save
saves = []


def save(self, *args, **kwargs):
  saves.append(1)
  if len(saves) > ALLOWED:
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))
  return _save(self, *args, **kwargs)


signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
checkpoint.RunCheckpoints.save = save
sys.exit(main())
