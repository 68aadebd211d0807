"""The study's open questions, answered from every run: do images become simpler, and how much of
the drift is coverage rather than recursion? Their verdicts and their section of the report.

    from analysis.questions import question_verdicts
    question_verdicts(frame)  # findings Q1a, Q1b (analysis.complexity) and Q2 (analysis.drift_model)

The questions' rows form a family of their own: their p-values are Holm-adjusted over their rows,
so the study's verdicts do not depend on whether complexity was logged.
"""

import pandas as pd

from analysis import complexity, drift_model
from analysis.complexity import complexity_figure, complexity_rows, complexity_table
from analysis.document import Section, Table, Text
from analysis.drift_model import (FULL_COVERAGE, MODELS, coverage_figure, coverage_frame, coverage_rows, model_table,
                                  run_fits)
from analysis.findings import decide
from analysis.frames import condition_keys, groups
from analysis.rules import Rules
from rip.metrics.complexity import COMPLEXITY_KEYS

QUESTIONS = {**complexity.CLAIMS, **drift_model.CLAIMS}


def question_verdicts(frame: pd.DataFrame, rules: Rules = Rules(), metric: str | None = None) -> pd.DataFrame:
    """Findings Q1a, Q1b and Q2 for every condition of `frame`, in `analysis.verdicts.COLUMNS`, decided
    as one family. Only FINISHED image runs enter; `incomplete` counts the images left out.
    `metric`: the distance of Q1b (default: lpips_vgg, else the first)."""
    finished = frame[frame["status"] == "FINISHED"] if "status" in frame else frame
    rows = complexity_rows(finished, metric, rules) + coverage_rows(finished, rules)
    table = decide(rows, rules)
    if len(finished) < len(frame):
        keys = condition_keys(frame)
        left_out = frame[frame["status"] != "FINISHED"]
        counts = (left_out.groupby(keys, dropna=False)["image_id"].nunique() if keys
                  else pd.Series({(): left_out["image_id"].nunique()}))
        by_context = {", ".join(f"{k}={v}" for k, v in zip(keys, values if isinstance(values, tuple) else (values,))):
                      int(n) for values, n in counts.items()}
        table["incomplete"] = table["context"].map(by_context).fillna(0).astype(int)
        left = table["incomplete"] > 0
        table.loc[left, "note"] = table.loc[left, "note"].astype(str) + "; images with unfinished runs left out"
    return table


def questions_section(frame: pd.DataFrame, out, metric: str | None = None) -> Section | None:
    """The report's section on complexity and coverage, its figures and tables written by `out`
    (the report's writer: `figure(figure, stem, caption)`, `table(data, name)`); None when the
    runs logged neither."""
    has_complexity = frame["metric"].isin(COMPLEXITY_KEYS).any()
    has_coverage = not coverage_frame(frame).empty
    if not (has_complexity or has_coverage):
        return None
    blocks = [Text(
        "Complexity is measured on each generation alone, inside the picture's area (without the letterbox bands), "
        "and shown as a ratio to the original's: lossless PNG size in bits per pixel, Canny edge density, colour "
        "entropy, the share of spectral energy above 1/8 cycle per pixel, and Hasler–Süsstrunk colourfulness. "
        "Coverage is the share of the image inpainted at least once, depth how often a covered pixel was inpainted on "
        "average (coverage × depth = percent / 100), both from each run's own squares. Their verdicts (Q1a, Q1b, Q2) "
        "are in the verdict table above, Holm-adjusted as a family of their own.")]
    for label, rows in groups(frame, together=("mask_order",)):
        suffix = f"-{label}" if label else ""
        where = f" ({label})" if label else ""
        if rows["metric"].isin(COMPLEXITY_KEYS).any():
            blocks.append(out.figure(complexity_figure(rows), f"figures/complexity{suffix}",
                                     f"Complexity relative to the original, mean ± SD per mask{where}"))
        if not coverage_frame(rows).empty:
            blocks.append(out.figure(coverage_figure(rows, metric), f"figures/coverage{suffix}",
                                     f"Coverage versus percent, and the distance versus coverage coloured by depth{where}"))
    if has_complexity:
        table = complexity_table(frame)
        out.table(table, "statistics/complexity.csv")
        final = table[table["percent"] == table["percent"].max()]
        blocks.append(Table(final, f"Complexity relative to the original at {final['percent'].max()} % "
                                   "(mean, SD over image runs; every checkpoint in the file):",
                            "statistics/complexity.csv"))
    if has_coverage:
        fits = run_fits(frame)
        if not fits.empty:
            models = model_table(fits)
            out.table(fits, "statistics/drift_model_runs.csv")
            out.table(models, "statistics/drift_model.csv")
            forms = "; ".join(f"{name}: {formula}" for name, (formula, _, _) in MODELS.items())
            blocks += [
                Text(f"The drift model: each image run's distance d at the checkpoints after 0 % fitted through the "
                     f"origin by least squares with coverage c and depth D ({forms}). Models are compared by AIC and BIC "
                     "summed over image runs; the chosen one (lowest BIC) splits the fitted distance at the last "
                     "checkpoint into coverage, f(c, 1), and recursion, f(c, D) − f(c, 1). Finding Q2 asks whether the "
                     f"distance still grows once every run's coverage is at least {FULL_COVERAGE:.0%}."),
                Table(models[models["chosen"]], "The chosen model per condition, mask and distance, and why (every "
                      "model in the file, every run's fit in statistics/drift_model_runs.csv):",
                      "statistics/drift_model.csv"),
            ]
    return Section("Complexity and coverage", blocks)
