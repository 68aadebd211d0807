"""Tracking-server runs -> tidy frames -> the study's figures, tables and statistics.

    from analysis import load_results, mean_std_figure, save, verdicts
    frame = load_results("http://127.0.0.1:5000", experiments=["rip-replication"])
    save(mean_std_figure(frame), "figures/mean_std.png")  # and .svg, .pdf
    verdicts(frame)                                          # the study's findings, tested (docs/verdicts.md)

Names are imported on first use, so `rip --help` does not pay for matplotlib and scipy.
"""

import importlib

_EXPORTS = {
    "analysis.collapse": ("collapse_verdicts",),
    "analysis.collection": ("collect",),
    "analysis.complexity": ("complexity_figure", "complexity_verdicts"),
    "analysis.drift_model": ("coverage_figure", "model_table", "run_fits"),
    "analysis.figures": ("filmstrip_figure", "label_figure", "mean_std_figure", "properties_figure", "save",
                         "scatter_figure", "variability_figure"),
    "analysis.labels": ("label_breakdown", "label_tests"),
    "analysis.load": ("AnalysisError", "load_results", "load_runs", "load_values"),
    "analysis.questions": ("question_verdicts",),
    "analysis.report": ("write_report",),
    "analysis.statistics": ("fit_saturation", "paired_tests", "property_correlations", "saturation_fits",
                            "stability_ranking"),
    "analysis.summary": ("summary_table", "to_markdown"),
    "analysis.cubes": ("completeness",),
    "analysis.rules": ("Rules",),
    "analysis.verdicts": ("verdicts",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
