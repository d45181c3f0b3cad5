"""Several hosts and devices for one command: JAX's own distributed runtime.

``--coordinator HOST:PORT --num-processes N --process-id I`` start
``jax.distributed.initialize`` with those values; without them, a job under
a cluster manager that JAX detects (SLURM, Open MPI, ...) is initialised from
its environment, and anything else runs as one process. On CPU the processes
exchange data with the gloo collectives. ``--devices N`` limits a run to N
devices (default: all of them). Every process feeds its own devices; process
0 alone writes the results (:func:`ngm_jax.run_benchmark`).
"""

from __future__ import annotations

import argparse
import os

import jax

__all__ = ["add_distributed_flags", "initialize", "PEER_TIMEOUT_S"]

#: Seconds without a heartbeat after which a peer is taken for dead
#: (``jax.distributed.initialize``'s ``heartbeat_timeout_seconds``).
PEER_TIMEOUT_S = 20

# Environment variables by which jax.distributed's cluster detection
# recognises a multi-process job.
_CLUSTER_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--devices", type=int, default=None, metavar="N",
                      help="split the seeds over N devices (default: every device of every"
                           " process)")
  parser.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                      help="several processes: the address of process 0's coordinator")
  parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                      help="several processes: how many (with --coordinator)")
  parser.add_argument("--process-id", type=int, default=None, metavar="I",
                      help="several processes: this one's index, 0..N-1 (with --coordinator)")
  parser.add_argument("--peer-timeout-s", type=int, default=PEER_TIMEOUT_S, metavar="S",
                      help="several processes: a process not heard from for S seconds is taken"
                           " for dead and the others stop, with the resume command"
                           f" (default {PEER_TIMEOUT_S}; JAX's own default is 100)")


def check(args: argparse.Namespace) -> None:
  """The flags' values, before JAX starts (ValueError names the flag)."""
  given = [args.coordinator, args.num_processes, args.process_id]
  if any(v is not None for v in given) and any(v is None for v in given):
    raise ValueError("--coordinator, --num-processes and --process-id go together; give all"
                     " three (or none, for one process or a detected cluster).")
  if args.coordinator is not None:
    host, _, port = args.coordinator.rpartition(":")
    if not host or not port.isdigit():
      raise ValueError(f"--coordinator {args.coordinator}: write HOST:PORT, e.g. 127.0.0.1:1234.")
    if args.num_processes < 1:
      raise ValueError(f"--num-processes {args.num_processes}: must be >= 1.")
    if not 0 <= args.process_id < args.num_processes:
      raise ValueError(f"--process-id {args.process_id}: must be in 0..{args.num_processes - 1}.")
  if getattr(args, "peer_timeout_s", PEER_TIMEOUT_S) < 1:
    raise ValueError(f"--peer-timeout-s {args.peer_timeout_s}: must be >= 1 second.")
  if args.devices is not None and args.devices < 1:
    raise ValueError(f"--devices {args.devices}: must be >= 1.")


def initialize(args: argparse.Namespace) -> None:
  """Starts JAX's distributed runtime when the flags or the cluster ask for it."""
  check(args)
  detected = any(os.environ.get(v) for v in _CLUSTER_ENV)
  if args.coordinator is None and not detected:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  timeout = getattr(args, "peer_timeout_s", PEER_TIMEOUT_S)
  # A dead peer then fails the next collective (ngm_jax.segment_actions.PeerLost:
  # one message and the resume command), where JAX would abort this process.
  jax.config.update("jax_enable_recoverability", True)
  if args.coordinator is not None:
    jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                               process_id=args.process_id, heartbeat_timeout_seconds=timeout)
  else:
    jax.distributed.initialize(heartbeat_timeout_seconds=timeout)
