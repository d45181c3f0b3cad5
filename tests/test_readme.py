"""The README's code runs as written: every python block executed on tiny data,
every bash command parsed by the parser it calls (the CLI's or the script's)."""

import argparse
import dataclasses
import importlib
import re
import shlex
from pathlib import Path

import pytest

from ngm_jax import streams
from ngm_jax.results import load_result
from ngm_jax.train import TrainConfig
from tests.conftest import fake_mnist, write_mnist_idx

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks(heading: str) -> list[str]:
  text = README.read_text()
  section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_your_optimizer_your_model_runs(tmp_path, monkeypatch, capsys):
  blocks = _section_blocks("Your optimizer, your model")
  assert len(blocks) == 3 and "load_benchmark" in blocks[0]  # the setup the test replaces
  monkeypatch.chdir(tmp_path)
  namespace = {
      "stream": streams.split_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=2)),
      "config": TrainConfig(iterations_per_task=2, batch_size=4, task_eval_every=2),
  }
  exec(compile(blocks[1], str(README), "exec"), namespace)  # pylint: disable=exec-used
  assert "(2, 10)" in capsys.readouterr().out  # the printed task1_acc shape
  saved = load_result(tmp_path / "results" / "mine")
  assert saved.labels == ["ngm_adamw", "adamw", "ngm_sgd"]
  assert saved.meta["model_kind"] == "nnx"
  assert not saved.meta["variants"]["adamw"]["has_gain"]


def test_the_command_line_factory_example_loads_from_the_current_folder(tmp_path, monkeypatch):
  import sys
  import jax.numpy as jnp
  from ngm_jax.cli.run import load_factory
  section = README.read_text().split("## Your optimizer, your model\n", 1)[1].split("\n## ", 1)[0]
  factory = _section_blocks("Your optimizer, your model")[2]
  assert "mylab.opt:make_tx" in section and "def make_tx(learning_rate)" in factory
  (tmp_path / "mylab").mkdir()
  (tmp_path / "mylab" / "opt.py").write_text(factory)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
  monkeypatch.delitem(sys.modules, "mylab", raising=False)
  monkeypatch.delitem(sys.modules, "mylab.opt", raising=False)
  tx = load_factory("mylab.opt:make_tx", 0.01)
  params = {"w": jnp.ones(3)}
  updates, _ = tx.update({"w": jnp.full(3, 2.0)}, tx.init(params), params)
  assert updates["w"].shape == (3,)


def test_the_own_training_loop_snippet_runs_as_written():
  """The "Use the gain in your own training loop" block defines everything it uses."""
  text = README.read_text()
  section = text.split("## Use the gain in your own training loop\n", 1)[1].split("\n## ", 1)[0]
  block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
  namespace = {}
  exec(compile(block, str(README), "exec"), namespace)  # pylint: disable=exec-used
  import ngm_jax  # pylint: disable=import-outside-toplevel
  assert float(ngm_jax.gain_of(namespace["opt_state"])) > 1.0  # g rose with the entropy
  assert namespace["loss"].shape == ()


# --- Every code block of the README (and the site's getting-started page) -----------------

GETTING_STARTED = README.parent / "docs" / "getting_started.md"
PYPROJECT = README.parent / "pyproject.toml"


def _blocks(path: Path, language: str) -> list[tuple[str, str]]:
  """``[(section heading, code)]`` of every ``language`` block in ``path``, in order."""
  found, heading = [], ""
  for part in re.split(r"(^```\w*\n.*?^```)", path.read_text(), flags=re.S | re.M):
    if part.startswith(f"```{language}\n"):
      found.append((heading, part[len(language) + 4:-3]))
    elif not part.startswith("```"):
      headings = re.findall(r"^#+ (.+)$", part, flags=re.M)
      heading = headings[-1] if headings else heading
  return found


def _commands(code: str) -> list[str]:
  """The commands of a bash block: continuation lines joined, ``&&`` split."""
  joined = code.replace("\\\n", " ")
  return [c.strip() for line in joined.splitlines() for c in line.split("&&") if c.strip()]


class _Parsed(Exception):
  """Raised in place of running a script once its arguments have parsed."""


def _parse_script(module_name: str, argv: list[str], monkeypatch) -> argparse.Namespace:
  """Parses ``argv`` with ``module_name``'s own parser (its ``main(argv)``), running nothing."""
  module = importlib.import_module(module_name)
  original = argparse.ArgumentParser.parse_args

  def parse_only(self, args=None, namespace=None):
    raise _Parsed(original(self, args, namespace))

  with monkeypatch.context() as patch:
    patch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    try:
      module.main(argv)
    except _Parsed as parsed:
      return parsed.args[0]
  raise AssertionError(f"{module_name}.main({argv}) did not parse its arguments")


def _check_ngm_jax(argv: list[str]) -> None:
  """Parses an ``ngm-jax`` command line and, for run and tune, builds its config
  and training config (every value checked; no data read)."""
  from ngm_jax.cli import parser
  from ngm_jax.cli.experiment import experiment_config, train_config_from
  args = parser().parse_args(argv)
  if args.command in ("run", "tune"):
    train_config_from(args, experiment_config(args))


def _check_command(command: str, monkeypatch) -> str:
  """Checks one README command against what it calls; returns what it is."""
  variants = {re.sub(r"\[(--[^\]]*)\]", r"\1", command),
              re.sub(r"\s*\[--[^\]]*\]", "", command)}
  for text in sorted(variants):  # [optional flags] given and left out
    words = shlex.split(text, comments=True)
    if words[0] == "ngm-jax":
      _check_ngm_jax(words[1:])
    elif words[:3] in (["python", "-m", "experiments.run"], ["python", "-m", "ngm_jax.cli"]):
      _check_ngm_jax(words[3:])
    elif words[:2] == ["python", "-m"] and words[2].startswith("experiments."):
      _parse_script(words[2], words[3:], monkeypatch)
    elif words[0] == "python" and words[1].startswith("experiments/"):
      assert (README.parent / words[1]).is_file(), command
      _parse_script(words[1][:-3].replace("/", "."), words[2:], monkeypatch)
    elif words[:3] == ["python", "-m", "pytest"]:
      markers = re.findall(r'"(\w+):', PYPROJECT.read_text().split("markers = [", 1)[1])
      chosen = words[words.index("-m", 3) + 1:][:1] if "-m" in words[3:] else []
      assert all(m in markers for m in chosen), command
    elif words[:3] == ["pip", "install", "-e"]:
      extras = re.fullmatch(r"\.(?:\[(\w+)\])?", words[3])
      assert extras, command
      assert extras[1] is None or re.search(rf"^{extras[1]} = \[", PYPROJECT.read_text(),
                                            flags=re.M), command
    elif words[:3] == ["python3", "-m", "venv"] or words[0] == ".":
      pass
    elif words[0] == "tensorboard":  # the viewer of the tensorboard extra, on a run's logs
      assert words[1] == "--logdir" and words[2].endswith("/tensorboard"), command
      assert re.search(r"^tensorboard = \[.*\"tensorboard[>=\"]", PYPROJECT.read_text(),
                       flags=re.M), command
    elif words[0] == "sphinx-build":
      source = words[-2]
      assert (README.parent / source / "conf.py").is_file(), command
    else:
      raise AssertionError(f"README command not checked by this test: {command}")
  return words[0]


@pytest.mark.parametrize("path", [README, GETTING_STARTED], ids=lambda p: p.name)
def test_every_bash_command_parses_with_the_parser_it_calls(path, monkeypatch):
  """Every command of every bash block names a real command, flags and values:
  ``ngm-jax`` lines are parsed by the CLI's parser and their configs built, the
  scripts' lines by the scripts' own parsers (nothing runs)."""
  monkeypatch.chdir(README.parent)  # --config experiments/configs/... as typed
  checked = [_check_command(c, monkeypatch) for _, code in _blocks(path, "bash")
             for c in _commands(code)]
  assert "ngm-jax" in checked and len(checked) >= (30 if path == README else 5)


def test_a_bad_flag_in_a_readme_command_fails_the_check(monkeypatch):
  monkeypatch.chdir(README.parent)
  with pytest.raises(SystemExit):
    _check_command("ngm-jax run --benchmark split_mnist --etaa 0.5", monkeypatch)
  with pytest.raises(SystemExit):
    _check_command("python experiments/bench.py --data-dir DIR --seedz 5", monkeypatch)
  with pytest.raises(ValueError, match="--eval-every"):  # values checked against each other
    _check_command("ngm-jax run --benchmark split_mnist --eval-every 3", monkeypatch)


def test_no_readme_path_exists_only_on_the_development_machine():
  for path in (README, GETTING_STARTED):
    text = path.read_text()
    assert not re.search(r"shared/data|/work/|path/to/", text), path.name


def _shrunk(run_benchmark):
  """``run_benchmark`` at 2 iterations per task, batch 4, at most 2 seeds."""
  def run(stream, optimizers, config=None, **kwargs):
    config = dataclasses.replace(config or TrainConfig(), iterations_per_task=2, batch_size=4,
                                 task_eval_every=2, eval_every=1)
    kwargs["num_seeds"] = min(kwargs.get("num_seeds", 5), 2)
    return run_benchmark(stream, optimizers, config, **{**kwargs, "show_progress": False})
  return run


@pytest.mark.slow
@pytest.mark.parametrize("path", [README, GETTING_STARTED], ids=lambda p: p.name)
def test_every_python_block_runs(path, tmp_path, monkeypatch, capsys):
  """Every python block, the blocks of a section in order in one namespace, with
  ``"DIR"`` a folder of tiny fake MNIST IDX files and every ``run_benchmark``
  call shortened to 2 iterations per task, batch 4, at most 2 seeds."""
  import ngm_jax
  from ngm_jax import benchmarks
  data_dir = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=8,
                                                            n_test_per_class=4))
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(ngm_jax, "run_benchmark", _shrunk(ngm_jax.run_benchmark))
  monkeypatch.setattr(benchmarks, "BENCHMARKS", dict(benchmarks.BENCHMARKS))  # register()
  sections: dict[str, list[str]] = {}
  for heading, code in _blocks(path, "python"):
    sections.setdefault(heading, []).append(code.replace('"DIR"', repr(str(data_dir))))
  assert sections
  for heading, blocks in sections.items():
    namespace: dict = {}
    for code in blocks:
      exec(compile(code, f"{path.name}: {heading}", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out
  assert "(2, " in printed or path != README  # the printed task1_acc shape [seeds, points]


@pytest.mark.slow
def test_the_main_commands_run_with_reduced_flags(tmp_path, monkeypatch):
  """The "Run the main experiment" commands as typed, on tiny fake data, with
  --data-dir and a 2-iteration, 1-seed schedule added."""
  from ngm_jax.cli import main
  section = README.read_text().split("## Run the main experiment\n", 1)[1].split("\n## ", 1)[0]
  run, report = [shlex.split(code.strip()) for code in
                 re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:2]]
  assert run == ["ngm-jax", "run", "--benchmark", "split_mnist"]
  assert report == ["ngm-jax", "report", "results/split_mnist"]
  data_dir = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4,
                                                            n_test_per_class=2))
  monkeypatch.chdir(tmp_path)
  reduced = ["--data-dir", str(data_dir), "--iterations-per-task", "2", "--batch-size", "4",
             "--task-eval-every", "2", "--seeds", "1", "--no-progress", "--no-compile-cache"]
  assert main(run[1:] + reduced) == 0
  table = (tmp_path / "results" / "split_mnist" / "table.md").read_text()
  assert table.startswith("# Split MNIST:")
  (tmp_path / "results" / "split_mnist" / "table.md").unlink()
  assert main(report[1:]) == 0
  assert (tmp_path / "results" / "split_mnist" / "table.md").read_text() == table
