"""argparse value types shared by the experiment commands."""

from __future__ import annotations

import argparse
from typing import Callable


def comma_separated(kind: Callable[[str], object], flag: str,
                    sort_unique: bool = False) -> Callable[[str], tuple]:
  """An argparse ``type``: ``"1,2,3"`` → a tuple of ``kind`` values.

  Args:
    kind: ``int`` or ``float`` (any ``str -> value``).
    flag: the option's name, for error messages (e.g. ``"--etas"``).
    sort_unique: sort the values and drop repeats.

  The returned function raises ``argparse.ArgumentTypeError`` naming the flag
  and the text for a value ``kind`` cannot read, or for no value at all.
  """
  def parse(text: str) -> tuple:
    try:
      values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
      raise argparse.ArgumentTypeError(f"{flag} {text!r}: {err}") from None
    if not values:
      raise argparse.ArgumentTypeError(
          f"{flag} {text!r}: give comma-separated {getattr(kind, '__name__', 'value')}s.")
    return tuple(sorted(set(values))) if sort_unique else tuple(values)

  return parse
