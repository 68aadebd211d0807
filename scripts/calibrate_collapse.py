"""How often the collection verdicts (C1, C2a, C2b, C3a, C3b) hold where false and where true, on simulations.

    python scripts/calibrate_collapse.py --sims 200
    python scripts/calibrate_collapse.py --sims 100 --findings C2b,C3b

prints a Markdown table: per finding, the share of simulated rows that hold where the claim is false
at its threshold (the false-"holds" rate) and where it is true (the power).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.collapse_calibration import calibrate_collapse  # noqa: E402
from analysis.summary import to_markdown  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--findings", default="", help="comma-separated findings to simulate (default: all)")
    args = parser.parse_args()
    start = time.perf_counter()
    table = calibrate_collapse(args.sims, args.seed, findings=[f for f in args.findings.split(",") if f])
    print(to_markdown(table, digits=3))
    print(f"{args.sims} simulated rows per scenario (seed {args.seed}), {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
