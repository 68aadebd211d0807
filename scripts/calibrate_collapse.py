"""How often the collection verdicts (C1, C2a, C3a) hold where false and where true, on simulations.

    python scripts/calibrate_collapse.py --sims 200

prints a Markdown table: per finding, the share of simulated rows that hold where the claim is false
at its threshold (the false-"holds" rate) and where it is true (the power).
"""

import argparse

from analysis.collapse_calibration import calibrate_collapse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = calibrate_collapse(args.sims, args.seed)
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
