"""The dataset card (README.md) of an export: its configurations for `datasets`, the protocol, the
models as logged, the images' licences as their sources state them, how it was made."""

from datetime import datetime, timezone

import pandas as pd
import yaml

from analysis.summary import to_markdown
from rip import artefacts

FRONT_MATTER = {
    "configs": [
        {"config_name": "generations", "default": True,
         "data_files": [{"split": "train", "path": "generations/*.parquet"}]},
        {"config_name": "originals", "data_files": [{"split": "train", "path": "originals/*.parquet"}]},
    ],
    "license": "other",  # per image, see the card's table; the generations follow their models' licences
    "tags": ["recursive-inpainting", "inpainting", "image-quality", "mlflow"],
}
SHOWN_FIELDS = ("model", "resolved_revision", "images", "mask", "size", "seed", "percent", "step", "metrics")


def dataset_card(exported, *, command: str, tracking_uri: str) -> str:
    """README.md for `exported` (analysis.export.Exported), made by `command` from `tracking_uri`."""
    runs, originals = exported.runs, exported.originals
    configurations = [run.data.params for run in exported.configurations]
    names = sorted(runs["experiment"].unique())
    versions = sorted({f"rip {p.get('version_rip', '?')}, commit {p.get('code_commit', 'unknown')}"
                       for p in configurations})
    front = yaml.safe_dump({**FRONT_MATTER, "pretty_name": f"Recursive inpainting: {', '.join(names)}"},
                           sort_keys=False, allow_unicode=True)
    parts = [
        f"---\n{front}---",
        f"# Recursive inpainting: {', '.join(names)}",
        f"{exported.rows} generations of {len(runs)} image runs in {len(configurations)} configuration runs "
        f"(MLflow experiment{'s' if len(names) > 1 else ''} {', '.join(f'`{n}`' for n in names)}), and "
        f"{len(originals)} originals, exported from an MLflow tracking server by `rip export`.",
        "```python\nimport datasets\n\ngenerations = datasets.load_dataset(\"PATH\", split=\"train\")  "
        "# one row per (image run, checkpoint)\noriginals = datasets.load_dataset(\"PATH\", \"originals\", "
        "split=\"train\")\n```",
        "## Protocol\n\n" + PROTOCOL,
        "## Configurations\n\n" + to_markdown(pd.DataFrame(
            [{"run": run.info.run_name, "run_id": run.info.run_id,
              **{name: run.data.params.get(name, "") for name in SHOWN_FIELDS}} for run in exported.configurations])),
        "## Models\n\n" + _models(configurations),
        "## Columns\n\n" + _columns(exported),
        "## Images and their licences\n\nAs each image's source states it (scikit-image's and matplotlib's "
        "sample data, the dataset card of a hub dataset); the generations are the models' outputs from these "
        "images.\n\n" + to_markdown(originals[["image_id", "size", "origin", "licence"]].drop_duplicates()),
        "## How it was made\n\n"
        f"`{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, from the tracking server "
        f"`{tracking_uri}`: every FINISHED image run that matched, its metric values as logged (the latest value "
        "where one was logged twice at a step), its parameters as logged, and its `original.png` and "
        "`generations/NNNN.png` as they were logged (lossless PNG, 8-bit RGB). The runs were recorded by "
        + "; ".join(versions) + ".",
    ]
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


PROTOCOL = (
    "Each image is letterboxed to `size`×`size` pixels (bands of `pad_color`, scaled with `resample`) and cut "
    "into a grid of `mask`×`mask` squares. Each iteration, an inpainting model fills one square drawn from the "
    "grid (uniformly at random with `mask_order=random`), and its output, rounded to 8-bit pixels, is the next "
    "iteration's input. Progress counts the percent of pixels inpainted: one iteration is mask²/size² of them. "
    "Every `step` percent (and at 0 %, the original) up to `percent`, each metric compares the generation "
    "with the original; `coverage` and `depth` say how much of the picture was inpainted how often, and "
    "`complexity_*` measure the generation itself. Every random choice derives from the seed, the image id, "
    "the iteration and the run's conditions (`random_numbers`). This is the protocol of *Assessing the "
    "Stability of Stable Diffusion in a Recursive Inpainting Scenario*; the configurations below say which "
    "values these runs used."
)


def _models(configurations: list[dict[str, str]]) -> str:
    """One line per model as logged: id, revision asked for, revision loaded, licence where known."""
    licences = {model.id: model.licence for model in artefacts.MODELS}
    lines = []
    for model, asked, loaded in sorted({(p.get("model", ""), p.get("model_revision", ""), p.get("resolved_revision", ""))
                                        for p in configurations}):
        where = f"revision {loaded}" if loaded else "no revision (not a hub model)"
        if asked:
            where += f", asked for as {asked}"
        licence = f"; licence {licences[model]}" if model in licences else ""
        lines.append(f"- `{model}`: {where}{licence}")
    return "\n".join(lines)


def _columns(exported) -> str:
    metrics = ", ".join(f"`{name}`" for name in exported.metrics)
    labels = ", ".join(f"`{name}`" for name in exported.labels) or "none here"
    return "\n".join([
        "`generations` (default): `experiment`, `configuration_run_id` and `image_run_id` (MLflow run ids), "
        "`image_id`, `percent` (inpainted), `iteration`; every parameter of the image run as MLflow logged it "
        "(strings; a parameter named like another column is `param_<name>`, e.g. `param_percent`); the image's "
        f"labels ({labels}); every metric under its logged name ({metrics}; float64, empty where a run did not "
        "log it at that percent); `original_sha256` (the `sha256` of its row in `originals`); `image`, the "
        "generation.",
        "",
        "`originals`: `image_id`, `size`, `origin` (the image's file, sample name or dataset row), `licence`, "
        "the labels, `sha256`, `image_run_ids` (the image runs that started from it), `image`.",
    ])

