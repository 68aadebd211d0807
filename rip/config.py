"""The configuration of one run: the study's defaults, validated before anything starts."""

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageColor

from rip import artefacts
from rip.inpainters import BUILTIN_INPAINTERS, SCHEDULERS, check_denoising_steps
from rip.metrics import METRIC_NAMES
from rip.protocol.masks import MASK_ORDERS

STUDY_MODEL = artefacts.STUDY_MODEL.id  # the study's model, from its community mirror (see rip.artefacts)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "fp32", "fp16", "bf16")
RANDOM_NUMBERS = ("independent", "common")
"""independent: every condition of the run enters the key of each random draw, so runs of
different conditions draw independently (as in the study); common: draws depend only on (seed,
image, iteration), so conditions share squares and noise (a paired design)."""
SPEEDUPS = ("compile", "channels_last", "fuse_qkv")  # opt-in, same results within float tolerance
# settings that change no result: they may differ between attempts of a run (resume) and between workers
FREE_FIELDS = ("batch_size", "device", "experiment", *SPEEDUPS, "system_metrics", "animation")
RESAMPLING_FILTERS = ("lanczos", "bicubic", "bilinear", "hamming", "box", "nearest")

# fields that do not change what a run draws: how long it runs, what it measures, where it runs
_NOT_DRAWN = ("seed", "images", "percent", "step", "metrics", "complexity", "batch_size", "device", "experiment",
              "random_numbers", *SPEEDUPS, "system_metrics", "animation")
# what runs recorded before a field existed did, for `from_json`
_LEGACY = {"random_numbers": "common", "model_revision": "", "complexity": False}
# fields left out of the record (JSON, draw key) while empty, so records made before they existed keep their hashes
_RECORDED_WHEN_SET = ("model_revision",)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_REVISION = re.compile(r"^[\w][\w./-]*$")


@dataclass(frozen=True)
class RunConfig:
    """One (image set, mask size, seed) configuration. Defaults reproduce the study."""

    mask: int = 64  # side of the square inpainted per iteration, in pixels
    images: str = "sample"  # image set: sample, a folder, FOLDER:N or wikiart:N
    seed: int = 0
    percent: int = 400  # stop after this percent of the image's pixels were inpainted
    step: int = 50  # measure every `step` percent
    size: int = 512  # images are letterboxed to size×size
    model: str = STUDY_MODEL  # diffusers id or folder, or tiny, telea, ns, biharmonic
    # commit, branch or tag of a hub model; empty: the commit rip pins for it (rip.artefacts), else its default branch
    model_revision: str = ""
    metrics: tuple[str, ...] = ("lpips-alex", "lpips-vgg", "lpips-squeeze")
    complexity: bool = True  # log the complexity of each generation (rip.metrics.complexity) at every checkpoint
    steps: int | None = None  # num_inference_steps; None = the pipeline's default
    guidance: float | None = None  # guidance_scale; None = the pipeline's default
    strength: float | None = None  # None = the pipeline's default
    prompt: str = ""
    paste_back: bool = False  # restore unmasked pixels exactly after each inpainting
    mask_order: str = "random"  # random (the study), shuffle or scan
    scheduler: str | None = None  # None = the model's own scheduler
    random_numbers: str = "independent"  # see RANDOM_NUMBERS
    pad_color: str = "white"  # the letterbox bands ("blank areas are added"); any PIL colour
    resample: str = "lanczos"  # filter that scales images to `size`
    dtype: str = "auto"  # auto: on CUDA the family's half precision (bf16 for FLUX.1, else fp16), fp32 elsewhere
    skip_guidance: bool = True  # skip classifier-free guidance when it cannot change the result
    safety_checker: bool = False  # run the model's safety checker, when it ships one
    batch_size: int = 4  # images inpainted per pipeline call
    device: str = "auto"
    experiment: str = ""  # MLflow experiment; empty = the active one or "recursive-inpainting"
    compile: bool = False  # torch.compile the UNet and VAE decoder (static batches); same results within float tolerance
    channels_last: bool = False  # channels-last memory layout of the UNet and VAE; same results within float tolerance
    fuse_qkv: bool = False  # fused query/key/value attention projections; same results within float tolerance
    system_metrics: bool = True  # CPU, memory (and GPU) series on the configuration run, sampled while it runs
    animation: bool = True  # each image run logs animation.webp, its checkpoints as a moving picture

    def __post_init__(self):
        # the pinned commit asked for by name is the default: one configuration, one record
        if self.model_revision and self.model_revision == artefacts.pinned_revision(self.model):
            object.__setattr__(self, "model_revision", "")

    @property
    def revision(self) -> str:
        """The revision of the hub model to load: the one asked for, else the pinned commit, else '' (the default
        branch)."""
        return self.model_revision or artefacts.pinned_revision(self.model)

    @property
    def squares_per_side(self) -> int:
        return self.size // self.mask

    @property
    def iterations_per_step(self) -> int:
        """Inpaintings between two checkpoints."""
        return self.step * self.squares_per_side**2 // 100

    @property
    def total_iterations(self) -> int:
        return self.iterations_per_step * (self.percent // self.step)

    @property
    def checkpoints(self) -> list[int]:
        """Percent inpainted at each measurement, 0 included."""
        return list(range(0, self.percent + 1, self.step))

    @property
    def draw_key(self) -> str:
        """What, beside (seed, image, iteration), keys every random draw of this run."""
        if self.random_numbers == "common":
            return ""
        conditions = {k: v for k, v in self._record().items() if k not in _NOT_DRAWN}
        return json.dumps(conditions, sort_keys=True)

    def percent_after(self, iterations: int) -> float:
        """Percent of pixels inpainted after `iterations` inpaintings."""
        return 100 * iterations / self.squares_per_side**2

    def as_params(self) -> dict[str, str]:
        """Every field as an MLflow parameter string."""
        params = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = str(value).lower()
            params[field.name] = "" if value is None else str(value)
        return params

    def to_json(self) -> str:
        """The configuration as JSON (tagged on every run: the canonical record). An empty model_revision is
        left out, as in records made before it existed."""
        return json.dumps(self._record(), sort_keys=True)

    def _record(self) -> dict:
        fields = dataclasses.asdict(self)
        return {k: v for k, v in fields.items() if k not in _RECORDED_WHEN_SET or v != _LEGACY[k]}

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """The configuration of `to_json`; fields added since it was written take their old behaviour."""
        fields = {**_LEGACY, **json.loads(text)}
        fields["metrics"] = tuple(fields["metrics"])
        return cls(**fields)

    def validate(self) -> "RunConfig":
        """Raise ValueError naming the first bad value; return self when all is well."""
        for name in ("mask", "percent", "step", "size", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.steps is not None and self.steps <= 0:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if self.guidance is not None and self.guidance < 0:
            raise ValueError(f"guidance must be non-negative, got {self.guidance!r}")
        if self.strength is not None and not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength!r}")
        if self.steps is not None and self.strength is not None:
            check_denoising_steps(self.steps, self.strength)
        if self.size % self.mask:
            raise ValueError(f"mask {self.mask} does not divide size {self.size}")
        if self.size % 8:
            raise ValueError(f"size must be a multiple of 8, got {self.size}")
        cells = self.squares_per_side**2
        if self.step * cells % 100:
            raise ValueError(
                f"step {self.step}% is not a whole number of iterations with mask {self.mask} "
                f"at size {self.size} (one iteration inpaints {100 / cells:g}%)"
            )
        if self.percent % self.step:
            raise ValueError(f"percent {self.percent} is not a multiple of step {self.step}")
        if not self.metrics:
            raise ValueError("metrics must name at least one metric")
        for metric in self.metrics:
            if metric not in METRIC_NAMES:
                raise ValueError(f"unknown metric {metric!r}: expected some of {', '.join(METRIC_NAMES)}")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics lists a metric twice: {','.join(self.metrics)}")
        if self.mask_order not in MASK_ORDERS:
            raise ValueError(f"unknown mask_order {self.mask_order!r}: expected one of {', '.join(MASK_ORDERS)}")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
        for name, choices in (("random_numbers", RANDOM_NUMBERS), ("resample", RESAMPLING_FILTERS), ("dtype", DTYPES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}: expected one of {', '.join(choices)}")
        try:
            ImageColor.getrgb(self.pad_color)
        except (ValueError, AttributeError):
            raise ValueError(
                f"unknown pad_color {self.pad_color!r}: expected a colour name (white, black) or #RRGGBB"
            ) from None
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}: expected one of {', '.join(DEVICES)}")
        if not is_diffusers_model(self.model) and self.model not in BUILTIN_INPAINTERS:
            raise ValueError(
                f"unknown model {self.model!r}: expected {', '.join(BUILTIN_INPAINTERS)}, "
                "a diffusers model id (org/name) or a local model folder"
            )
        if self.model_revision and not is_hub_model(self.model):
            raise ValueError(f"model_revision names a revision of a hub model; {self.model!r} is not one: "
                             "leave model_revision empty")
        if self.model_revision and not _REVISION.match(self.model_revision):
            raise ValueError(f"malformed model_revision {self.model_revision!r}: expected a commit, branch or tag")
        if self.safety_checker and not is_diffusers_model(self.model):
            raise ValueError(f"safety_checker needs a diffusers model that ships one; {self.model!r} has none")
        for name in SPEEDUPS:
            if getattr(self, name) and not (is_diffusers_model(self.model) or self.model == "tiny"):
                raise ValueError(f"{name} speeds up diffusion models; {self.model!r} is not one")
        return self


def is_diffusers_model(model: str) -> bool:
    """True for a local diffusers folder or a hub id of the form org/name."""
    if model in BUILTIN_INPAINTERS:
        return False
    if Path(model).is_dir():
        return True
    return bool(_HUB_ID.match(model)) and not Path(model).exists()


def is_hub_model(model: str) -> bool:
    """True for a hub id OWNER/NAME that is not a local folder."""
    return is_diffusers_model(model) and not Path(model).is_dir()


def parse_metrics(text: str) -> tuple[str, ...]:
    """'lpips-vgg, ssim' -> ('lpips-vgg', 'ssim'); MLflow's keys (lpips_vgg) name the same metrics."""
    return tuple(metric_name(name) for name in text.split(",") if name.strip())


def metric_name(name: str) -> str:
    """A metric's name from its name or its MLflow key: 'lpips_vgg' -> 'lpips-vgg'."""
    return name.strip().replace("_", "-")
