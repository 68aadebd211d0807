"""What the demo offers on this machine: models and metrics whose files are present (nothing is
downloaded), pictures to pick, and the study's defaults where they can run."""

from dataclasses import dataclass

from rip import artefacts
from rip.config import RunConfig
from rip.images import SAMPLE_IMAGES, resolve_image_set
from rip.images.hub import WIKIART, parse_dataset, rows_cached
from rip.metrics import METRIC_NAMES

CLASSICAL_MODELS = ("telea", "ns", "biharmonic")  # need no download
STUDY_DRAW = "wikiart:100@0"  # the paintings of the replication preset
MASKS = (32, 64, 128, 256)  # the study's three, and a finer one
SIZES = (128, 256, 512)
FALLBACK_METRICS = ("stlpips-alex",)  # when LPIPS's backbones are missing: shipped with its package


@dataclass(frozen=True)
class Choices:
    """The demo's options, each list in the order shown, and what is preselected."""

    models: tuple[str, ...]
    metrics: tuple[str, ...]
    samples: tuple[str, ...]  # image sets of one photograph each: sample#astronaut, ...
    paintings: tuple[str, ...]  # one painting each of the study's draw, when its rows are cached
    model: str
    default_metrics: tuple[str, ...]
    mask: int = RunConfig.mask
    size: int = RunConfig.size
    percent: int = RunConfig.percent
    seed: int = RunConfig.seed


def offered() -> Choices:
    """The choices on this machine, the study's defaults preselected where their files are present."""
    models = (*[model.id for model in artefacts.MODELS if _is_inpainting(model) and model_present(model.id)],
              *CLASSICAL_MODELS)
    metrics = tuple(name for name in METRIC_NAMES if metric_present(name))
    study = RunConfig()
    default_metrics = tuple(name for name in study.metrics if name in metrics) or FALLBACK_METRICS
    return Choices(
        models=models,
        metrics=metrics,
        samples=tuple(f"sample#{name}" for name in SAMPLE_IMAGES),
        paintings=study_paintings(),
        model=study.model if study.model in models else CLASSICAL_MODELS[0],
        default_metrics=default_metrics,
    )


def model_present(model: str) -> bool:
    """Whether hub model `model`, at the revision runs load, is in the Hugging Face cache (no download)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "model_index.json", revision=artefacts.pinned_revision(model) or None)
    return isinstance(found, str)


def metric_present(name: str) -> bool:
    """LPIPS needs torchvision's ImageNet backbone in the torch hub cache; the others ship their weights."""
    if not name.startswith("lpips-"):
        return True
    from rip.metrics.lpips_metrics import missing_backbones

    return not missing_backbones([name.removeprefix("lpips-")])


def study_paintings() -> tuple[str, ...]:
    """`wikiart:100@0#ID` for each painting of the study's draw, when all of them are cached; else none."""
    count, _, seed = STUDY_DRAW.partition(":")[2].partition("@")
    if not rows_cached(parse_dataset(WIKIART, STUDY_DRAW), int(count), int(seed), STUDY_DRAW):
        return ()
    return tuple(f"{STUDY_DRAW}#{image.id}" for image in resolve_image_set(STUDY_DRAW, int(seed)))


def _is_inpainting(model: artefacts.HubModel) -> bool:
    return model is not artefacts.KANDINSKY22_PRIOR  # a prior the decoder loads, not a model of its own
