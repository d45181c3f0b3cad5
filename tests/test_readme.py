"""The README's "Your optimizer, your model" code runs as written (on tiny data)."""

import re
from pathlib import Path

import pytest

from ngm_jax import streams
from ngm_jax.results import load_result
from ngm_jax.train import TrainConfig
from tests.conftest import fake_mnist

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
