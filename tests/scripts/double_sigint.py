"""``ngm-jax run`` that gets a second SIGINT while a checkpoint is written.

tests/test_resume.py starts it with the arguments of ``ngm-jax run`` and sends
it the first SIGINT; the checkpoint written after that (the stop's) sends the
process the second one from inside orbax's save, before orbax has finished
the step, and waits there long enough for Python to handle it.
"""

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orbax.checkpoint._src.checkpointers import checkpointer  # pylint: disable=g-import-not-at-top

from ngm_jax import checkpoint  # pylint: disable=g-import-not-at-top
from ngm_jax.cli import main  # pylint: disable=g-import-not-at-top

signals = []
_handle = checkpoint.StopRequest._handle  # pylint: disable=protected-access
# Called by orbax's Checkpointer.save once the items are written, before the
# step is renamed into place (committed).
_step_metadata = checkpointer.Checkpointer._save_step_metadata  # pylint: disable=protected-access


def handle(self, signum, frame):
  signals.append(signum)
  _handle(self, signum, frame)


def step_metadata(self, *args, **kwargs):
  if signals and len(signals) == 1:
    signals.append("second")
    print("double_sigint: second SIGINT mid-save", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # the handler runs here, inside the save
  return _step_metadata(self, *args, **kwargs)


checkpoint.StopRequest._handle = handle  # pylint: disable=protected-access
checkpointer.Checkpointer._save_step_metadata = step_metadata  # pylint: disable=protected-access
sys.exit(main())  # sys.argv[1:]: the arguments of ngm-jax
