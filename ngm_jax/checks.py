"""Checks of hyperparameter values, shared by the library and the command line.

Each check returns ``None`` for an allowed value and raises ``TypeError``
(not a number / not an integer) or ``ValueError`` (NaN, infinite, out of
range): :class:`ParameterTypeError` and :class:`ParameterError`, which carry
the parameter's name (``.parameter``) and value. The messages read
``<what>=<value>: must be <allowed>``; :meth:`ParameterError.told` says the
same with every parameter it names written another way, so that the command
line names its flags (``--eta -1.0: must be ...``) by the error's structure,
not by editing its text. :func:`allowed` gives the ``<allowed>`` words alone.

A value that is traced (a hyperparameter under ``jit``/``vmap``, e.g. through
``optax.inject_hyperparams``) is not known yet and is not checked.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["ParameterError", "ParameterTypeError", "Rule", "RULES", "allowed", "check",
           "check_number", "check_integer", "check_choice"]


class _Told:
  """The parts of a message about named parameters (see :class:`ParameterError`)."""

  def _set(self, template: str, values: Mapping[str, Any], prefix: str, qualifier: str) -> str:
    if not values:
      raise ValueError("a parameter error names at least one parameter; values={}.")
    self.template, self.values = template, dict(values)
    self.prefix, self.qualifier = prefix, qualifier
    self.parameter = next(iter(self.values))
    self.value = self.values[self.parameter]
    return prefix + self.told(lambda name, value: f"{qualifier}{name}={value!r}")

  def told(self, spell: Callable[[str, Any], str]) -> str:
    """The message with each parameter it names written as ``spell(name,
    value)``, without the owner (the command line: ``--eta -1.0: must be
    ...``)."""
    return self.template.format(**{n: spell(n, v) for n, v in self.values.items()})

  def __reduce__(self):
    return (_rebuild, (type(self), self.template, self.values, self.prefix, self.qualifier))


def _rebuild(cls, template, values, prefix, qualifier):
  return cls(template, values, prefix=prefix, qualifier=qualifier)


class ParameterError(_Told, ValueError):
  """A value a named parameter may not take (NaN, infinite, out of range, or
  at odds with another parameter).

  The message is a template over the parameters it names, so a caller that
  knows them by other names says the same in its own words::

      try:
        TrainConfig(eval_every=3)
      except ParameterError as e:
        e.parameter  # "eval_every"
        str(e)       # "TrainConfig: eval_every=3 must divide task_eval_every=10."
        e.told(lambda name, value: f"--{name.replace('_', '-')} {value}")
                     # "--eval-every 3 must divide --task-eval-every 10."

  Args:
    template: the message with ``{name}`` where each parameter is named, e.g.
      ``"{eta}: must be a finite number >= 0."``.
    values: ``{name: value}`` of the parameters it names, the bad one first.
    prefix: the owner before the message (``"TrainConfig: "``).
    qualifier: the owner before each name (``"TrainConfig."``).

  Attributes:
    parameter: the bad parameter's name (the first of ``values``).
    value: its value.
    values, template, prefix, qualifier: as given.
  """

  def __init__(self, template: str, values: Mapping[str, Any], *, prefix: str = "",
               qualifier: str = ""):
    super().__init__(self._set(template, values, prefix, qualifier))


class ParameterTypeError(_Told, TypeError):
  """A named parameter's value of the wrong type (e.g. the string ``"0.5"``
  for a number); the same structure as :class:`ParameterError`."""

  def __init__(self, template: str, values: Mapping[str, Any], *, prefix: str = "",
               qualifier: str = ""):
    super().__init__(self._set(template, values, prefix, qualifier))


def _named(what: str) -> tuple[str, str, str]:
  """``what`` as written by :func:`check` → ``(prefix, qualifier, name)``:
  ``"TrainConfig.eta"`` → ``("", "TrainConfig.", "eta")``, ``"gain_modulation:
  eta"`` → ``("gain_modulation: ", "", "eta")``, ``"eta"`` → ``("", "", "eta")``."""
  if ": " in what:
    prefix, _, name = what.rpartition(": ")
    return prefix + ": ", "", name
  qualifier, dot, name = what.rpartition(".")
  return "", qualifier + dot, name


def _error(cls, what: str, value: Any, rest: str):
  prefix, qualifier, name = _named(what)
  template = "{" + name + "}" if name.isidentifier() else None
  if template is None:  # not a parameter's name (e.g. a flag as typed): a plain message
    return (ValueError if cls is ParameterError else TypeError)(f"{what}={value!r}{rest}")
  return cls(template + rest.replace("{", "{{").replace("}", "}}"), {name: value},
             prefix=prefix, qualifier=qualifier)


def _real(value: Any) -> float | None:
  """``float(value)`` for a real number (Python, NumPy or a 0-d array);
  None when it is traced; TypeError for anything else (str, bool, lists)."""
  if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
    raise TypeError
  if isinstance(value, numbers.Real):
    return float(value)
  dtype = getattr(value, "dtype", None)
  if (dtype is None or np.ndim(value) != 0
      or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))):
    raise TypeError
  try:
    return float(value)
  except Exception:  # pylint: disable=broad-except  # a tracer: not known yet
    return None


def check_number(what: str, value: Any, ok: Callable[[float], bool], allowed_text: str) -> None:
  """Raises unless ``value`` is a finite real number with ``ok(value)``.

  Raises:
    ParameterTypeError: ``value`` is not a real number (e.g. the string
      ``"0.5"``); a TypeError.
    ParameterError: NaN, infinite, or ``ok`` is False; a ValueError.
  """
  try:
    v = _real(value)
  except TypeError:
    raise _error(ParameterTypeError, what, value, f": must be {allowed_text}, not a"
                 f" {type(value).__name__}.") from None
  if v is not None and (not math.isfinite(v) or not ok(v)):
    raise _error(ParameterError, what, value, f": must be {allowed_text}.")


def check_integer(what: str, value: Any, minimum: int, optional: bool = False) -> None:
  """Raises unless ``value`` is an integer ``>= minimum`` (or None if ``optional``).

  Raises:
    ParameterTypeError: not an integer (a TypeError).
    ParameterError: below ``minimum`` (a ValueError).
  """
  allowed_text = (f"None or an integer >= {minimum}" if optional
                  else f"an integer >= {minimum}")
  if value is None and optional:
    return
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,)):
    raise _error(ParameterTypeError, what, value,
                 f": must be {allowed_text}, not a {type(value).__name__}.")
  if value < minimum:
    raise _error(ParameterError, what, value, f": must be {allowed_text}.")


def check_choice(what: str, value: Any, choices: tuple[str, ...]) -> None:
  """Raises unless ``value`` is one of the strings ``choices``.

  Raises:
    ParameterTypeError: not a string (a TypeError).
    ParameterError: a string not in ``choices`` (a ValueError).
  """
  allowed_text = "one of " + ", ".join(map(repr, choices))
  if not isinstance(value, str):
    raise _error(ParameterTypeError, what, value,
                 f": must be {allowed_text}, not a {type(value).__name__}.")
  if value not in choices:
    raise _error(ParameterError, what, value, f": must be {allowed_text}.")


class Rule:
  """What one hyperparameter may be: its kind (``"int"``, ``"float"`` or
  ``"choice"``: one of the strings ``choices``), its range in words and as a test."""

  def __init__(self, kind: str, allowed_text: str, ok: Callable[[float], bool] | None = None,
               minimum: int = 1, optional: bool = False, meaning: str = "",
               choices: tuple[str, ...] = ()):
    self.kind, self.allowed_text, self.ok = kind, allowed_text, ok
    self.minimum, self.optional, self.meaning = minimum, optional, meaning
    self.choices = choices

  def __call__(self, what: str, value: Any) -> None:
    if self.kind == "int":
      check_integer(what, value, self.minimum, self.optional)
    elif self.kind == "choice":
      check_choice(what, value, self.choices)
    elif value is None and self.optional:
      return
    else:
      check_number(what, value, self.ok, self.allowed_text)


_INT = lambda meaning: Rule("int", "an integer >= 1", meaning=meaning)
_OPT_INT = lambda meaning: Rule("int", "None or an integer >= 1", optional=True, meaning=meaning)

#: Every hyperparameter of :class:`ngm_jax.config.TrainConfig` and
#: :func:`ngm_jax.gain.gain_modulation`, by name.
RULES: dict[str, Rule] = {
    "iterations_per_task": _INT("optimizer steps per task"),
    "batch_size": _INT("minibatch size"),
    "eval_every": _INT("iterations between Task-1 evaluations"),
    "task_eval_every": _INT("iterations between evaluations of every task"),
    "eval_task1_limit": _OPT_INT("Task-1 test images evaluated"),
    "eval_batch_size": _OPT_INT("test images per evaluation chunk"),
    "learning_rate": Rule("float", "a finite number > 0", lambda v: v > 0, meaning="step size"),
    "gamma": Rule("float", "a finite number in [0, 1)", lambda v: 0 <= v < 1,
                  meaning="γ, the gain's retention per step"),
    "g0": Rule("float", "a finite number > 0", lambda v: v > 0,
               meaning="g0, the resting gain"),
    "eta": Rule("float", "a finite number >= 0", lambda v: v >= 0,
                meaning="η, the gain added per nat of entropy"),
    "const_gain": Rule("float", "a finite number > 0", lambda v: v > 0,
                       meaning="the g0_sgd ablation's constant gain"),
    "backbone_momentum": Rule("float", "None or a finite number in [0, 1)",
                              lambda v: 0 <= v < 1, optional=True,
                              meaning="the backbone's SGD momentum"),
    "compute_dtype": Rule("choice", "one of 'float32', 'bfloat16'",
                          choices=("float32", "bfloat16"),
                          meaning="the dtype the network computes in; parameters, gradients,"
                                  " optimizer state and gain stay float32"),
}


def allowed(name: str) -> str:
  """The words for what hyperparameter ``name`` may be, e.g. ``"a finite
  number in [0, 1)"``."""
  return RULES[name].allowed_text


def check(owner: str, name: str, value: Any) -> None:
  """Checks hyperparameter ``name``; messages read ``<owner>.<name>=<value>: ...``
  (``<owner>: <name>=...`` when ``owner`` ends with ':')."""
  what = f"{owner} {name}" if owner.endswith(":") else f"{owner}.{name}"
  RULES[name](what, value)
