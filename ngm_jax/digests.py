"""The official data files' digests, and the SHA-256 of a file.

:mod:`ngm_jax.provenance` records whether a run's MNIST files are the official
ones with these; :mod:`ngm_jax.fetch` accepts a download with them.
"""

from __future__ import annotations

import gzip
import hashlib
import os

__all__ = ["MNIST_OFFICIAL_GZ_SHA256", "MNIST_OFFICIAL_SHA256", "sha256_file"]

# The official MNIST release (LeCun, Cortes & Burges), the four gzip files as
# distributed (yann.lecun.com/exdb/mnist, mirrored unchanged by CVDF at
# storage.googleapis.com/cvdf-datasets/mnist/). SHA-256 and sizes as published
# by tensorflow-datasets in tensorflow_datasets/url_checksums/mnist.txt (read
# from the tensorflow-datasets 4.9.10 wheel); the sizes (9912422, 28881,
# 1648877, 4542 bytes) are those printed on the MNIST page. Not checked here
# against the files themselves: no copy of the original .gz files was at hand.
MNIST_OFFICIAL_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# The same four files decompressed (the IDX data themselves, 47040016, 60008,
# 7840016 and 10008 bytes). There is no official publication of these digests;
# they are the values that several independent public projects pin for the
# decompressed official files (one pairs each with the .gz digest above), and
# the MD5s of the same files that many more projects pin (6bbc9ace898e44ae...,
# a25bea736e30d166..., 2646ac647ad5339d..., 27ae3e4e09519cfb...) agree with the
# files these SHA-256 describe; and `zcat F | sha256sum` of a copy of the official
# .gz files gives these (checked when ngm_jax.fetch took them as its checksums).
# A re-compressed copy of the official data (other gzip settings: other .gz
# bytes) is recognised by these.
MNIST_OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def sha256_file(path: str | os.PathLike, gunzip: bool = False) -> str:
  """The SHA-256 (hex) of a file's bytes, or of its decompressed bytes with
  ``gunzip``; read in 1 MiB blocks."""
  digest = hashlib.sha256()
  opener = gzip.open if gunzip else open
  with opener(path, "rb") as f:
    while block := f.read(1 << 20):
      digest.update(block)
  return digest.hexdigest()
