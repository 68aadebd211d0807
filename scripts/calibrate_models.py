"""Calibrate finding M1 ("the models differ in stability"): its false-"holds" rate where the models are
alike by construction, and its power where one drifts more; see analysis/model_simulation.py. Prints a
Markdown table (the one in docs/models.md).

    .venv/bin/python scripts/calibrate_models.py [--sims 100] [--seed 0]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.model_simulation import calibrate_models  # noqa: E402
from analysis.summary import to_markdown  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=100, help="simulated comparisons per scenario")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    table = calibrate_models(args.sims, args.seed)
    rates = [c for c in table.columns if c not in ("scenario", "models", "images", "sims")]
    table[rates] = table[rates].map(lambda rate: "" if rate != rate else f"{100 * rate:.1f} %")
    print(to_markdown(table.drop(columns="sims")))
    print(f"{args.sims} simulated comparisons per scenario (seed {args.seed}), {time.perf_counter() - start:.0f} s; "
          f"Monte Carlo standard error of a rate p: sqrt(p(1 − p) / {args.sims}) (at 5 %: "
          f"{100 * (0.05 * 0.95 / args.sims) ** 0.5:.1f} points)")


if __name__ == "__main__":
    main()
