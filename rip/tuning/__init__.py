"""Searching for the conditions that keep recursive inpainting stable, with Optuna.

`rip tune` runs one worker: it joins (or creates) a study in an Optuna storage and runs trials
until the study's budget is used. Each trial is one configuration run (`rip.runner`) nested
under the study's MLflow run. Modules: `space` (what is searched), `objective` (one trial),
`tracking` (study and trial runs), `summary` (best conditions, importances, plots), `search` (the
worker loop), `cli`. The storage, the lock workers share, the claiming loop, heartbeats and
retries are `rip.sweeps.workqueue`, which shared sweeps use too.
"""
