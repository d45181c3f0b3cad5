"""experiments/comparison_report.py: the verdict is computed from the metrics."""

from experiments.comparison_report import verdict


def _m(sg, wc, final):
  e = lambda mean, se: {"mean": mean, "stderr": se}
  return {"avg_sg": e(*sg), "dl_wc_acc": e(*wc), "dl_final_acc_all": e(*final)}


def test_the_verdict_names_the_best_and_ngm_against_the_best_other():
  metrics = {"ngm_sgd": _m((0.03, 0.003), (0.90, 0.01), (0.95, 0.001)),
             "adam": _m((0.04, 0.004), (0.93, 0.005), (0.94, 0.002)),
             "sgd": _m((0.01, 0.001), (0.80, 0.01), (0.87, 0.003))}
  lines = verdict(metrics)
  assert lines[0] == ("- lowest Task-1 gap (avg-SG): **sgd** (1.00 ± 0.10 %); ngm_sgd − sgd ="
                      " +2.00 ± 0.32 points (beyond 2 standard errors)")
  assert lines[1].startswith("- highest WC-ACC over all tasks: **adam** (93.00 ± 0.50 %);"
                             " ngm_sgd − adam = -3.00 ± 1.12 points")
  assert lines[2].startswith("- highest final accuracy over all tasks: **ngm_sgd**")
  assert "ngm_sgd − adam = +1.00 ± 0.22 points" in lines[2]
