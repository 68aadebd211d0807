"""Calibrate the verdicts: false-"holds" rate and power of each, on simulated studies of the study's size.

Each simulated study holds the replication (100 images × 3 masks × 3 networks × 9 checkpoints, one
run) and the variability study (10 images × 10 runs), analysed together; see analysis/calibration.py
for the scenarios. Prints a Markdown table (the one in docs/verdicts.md).

    .venv/bin/python scripts/calibrate_verdicts.py [--sims 100] [--seed 0]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.calibration import calibrate, summary  # noqa: E402
from analysis.summary import to_markdown  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=100, help="simulated studies per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", help="also write every rate to this CSV file")
    args = parser.parse_args()
    start = time.perf_counter()
    results = calibrate(args.sims, args.seed)
    if args.raw:
        results.to_csv(args.raw, index=False)
    table = summary(results)
    worst = 0.5 / args.sims ** 0.5
    print(to_markdown(table))
    print(f"{args.sims} simulated studies per scenario (seed {args.seed}), {time.perf_counter() - start:.0f} s; "
          f"Monte Carlo standard error of a rate p: sqrt(p(1 − p) / {args.sims}), at most {100 * worst:.1f} points "
          f"(at 5 %: {100 * (0.05 * 0.95 / args.sims) ** 0.5:.1f}; at 80 %: {100 * (0.8 * 0.2 / args.sims) ** 0.5:.1f})")


if __name__ == "__main__":
    main()
