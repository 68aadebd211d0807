"""Recursive inpainting experiments tracked with MLflow.

The names a script needs:

    from rip import RunConfig, run_experiment, load_results
    run_id = run_experiment(RunConfig(images="sample:4", model="telea", size=256, metrics=("ssim",)))
    frame = load_results(experiments=["recursive-inpainting"])  # one row per image, metric and percent

and for a grid of configurations, `load_preset` + `expand` (experiments/*.yaml) and `run_sweep`.
Names are imported on first use, so `rip --help` does not pay for torch.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "rip.config": ("RunConfig",),
    "rip.runner": ("run_experiment",),
    "rip.sweeps.presets": ("expand", "load_preset"),
    "rip.sweeps.local": ("run_sweep",),
    "analysis.load": ("load_results",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'rip' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
