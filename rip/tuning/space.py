"""The search space: which run parameters a study varies, and over which values.

A space is written as whitespace-separated items, `NAME` (that parameter's default values) or
`NAME=SPEC`, where SPEC is a comma-separated list (`mask=64,128,256`) or, for numbers, a range
`LOW:HIGH` or `LOW:HIGH:log` (`steps=10:50:log`). An empty text means the default space.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from rip.config import RunConfig, is_diffusers_model
from rip.images import resolve_image_set
from rip.inpainters import SCHEDULERS
from rip.protocol.masks import MASK_ORDERS


@dataclass(frozen=True)
class Parameter:
    """A searchable field of `RunConfig`."""

    kind: type  # int, float, bool or str
    default: str  # default SPEC; empty when the values must be given
    diffusion: bool = False  # only diffusion models (tiny, diffusers) use it
    example: str = ""


# In suggestion order: model and prompt decide whether other parameters apply.
PARAMETERS = {
    "model": Parameter(str, "", example="model=tiny,telea"),
    "images": Parameter(str, "", example="images=sample:4,photos/"),
    "seed": Parameter(int, "", example="seed=0,1,2"),
    "mask": Parameter(int, ""),  # default: see default_masks
    "mask_order": Parameter(str, ",".join(MASK_ORDERS)),
    "prompt": Parameter(str, "", diffusion=True),  # the empty prompt versus --prompt TEXT
    "guidance": Parameter(float, "1:12", diffusion=True),
    "steps": Parameter(int, "10:50:log", diffusion=True),
    "strength": Parameter(float, "0.5:1", diffusion=True),
    "paste_back": Parameter(bool, "false,true", diffusion=True),
    "scheduler": Parameter(str, ",".join(SCHEDULERS), diffusion=True),
}
DEFAULT_CLASSICAL = ("mask", "mask_order")
DEFAULT_DIFFUSION = ("mask", "mask_order", "steps", "strength", "paste_back", "scheduler")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def uses_diffusion(model: str) -> bool:
    """True for the tiny pipeline and diffusers models, False for classical backends."""
    return model == "tiny" or is_diffusers_model(model)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: a list of values, or a numeric range."""

    name: str
    choices: tuple = ()
    bounds: tuple[float, float] | None = None
    log: bool = False

    @property
    def candidates(self) -> tuple:
        """The values to check: every listed value, or the range's ends."""
        return self.choices or self.bounds

    @property
    def varies(self) -> bool:
        return len(set(self.candidates)) > 1

    def suggest(self, trial):
        if self.bounds is None:
            return trial.suggest_categorical(self.name, list(self.choices))
        low, high = self.bounds
        if PARAMETERS[self.name].kind is int:
            return trial.suggest_int(self.name, int(low), int(high), log=self.log)
        return trial.suggest_float(self.name, low, high, log=self.log)

    def __str__(self) -> str:
        if self.bounds is None:
            return f"{self.name}=" + ",".join(_format(value) for value in self.choices)
        low, high = self.bounds
        return f"{self.name}={_format(low)}:{_format(high)}" + (":log" if self.log else "")


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters; every other field comes from a base configuration."""

    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> list[str]:
        return [dimension.name for dimension in self.dimensions]

    def suggest(self, trial, base: RunConfig, guided_without_prompt: Callable[[str], bool] = lambda model: False
                ) -> RunConfig:
        """The trial's configuration: `base` with the suggested values of the parameters that apply.

        `guided_without_prompt(model)`: whether guidance changes that model's images with an empty prompt.
        """
        values = {}
        for dimension in self.dimensions:
            if _applies(dimension.name, values, base, guided_without_prompt):
                values[dimension.name] = dimension.suggest(trial)
        return dataclasses.replace(base, **values)

    def grid(self, base: RunConfig) -> dict[str, list]:
        """The search space of a grid sampler; ValueError when a dimension is no list of values."""
        for dimension in self.dimensions:
            if dimension.bounds is not None:
                raise ValueError(f"the grid sampler needs lists of values, not the range {dimension}")
            if self._conditional(dimension.name, base):
                raise ValueError(
                    f"a grid cannot hold {dimension.name}: it applies to some points of the grid only "
                    f"({self})"
                )
        return {dimension.name: list(dimension.choices) for dimension in self.dimensions}

    def check(self, base: RunConfig) -> None:
        """Raise ValueError naming the first value that cannot work with `base`."""
        first = dataclasses.replace(base, **{d.name: d.candidates[0] for d in self.dimensions})
        first.validate()
        for dimension in self.dimensions:
            for value in dimension.candidates:
                config = dataclasses.replace(first, **{dimension.name: value})
                try:
                    config.validate()
                    if dimension.name == "images":
                        resolve_image_set(value, config.seed)
                except ValueError as error:
                    raise ValueError(f"search space {dimension}: {error}") from error
        models = self.values("model", base)
        for dimension in self.dimensions:
            if PARAMETERS[dimension.name].diffusion and not any(map(uses_diffusion, models)):
                raise ValueError(
                    f"search space {dimension}: {dimension.name} has no effect on {', '.join(models)}; "
                    "only diffusion models (tiny or a diffusers model) use it"
                )
        if not any(dimension.varies for dimension in self.dimensions):
            raise ValueError(f"the search space is empty: nothing varies in {self or 'it'}")

    def values(self, name: str, base: RunConfig) -> tuple:
        """The values of `name` to check: its candidates when searched (a range's ends), else the base's."""
        dimension = next((d for d in self.dimensions if d.name == name), None)
        return dimension.candidates if dimension else (getattr(base, name),)

    def _conditional(self, name: str, base: RunConfig) -> bool:
        """True when `name` applies to some combinations of the other values but not all."""
        if PARAMETERS[name].diffusion and not all(map(uses_diffusion, self.values("model", base))):
            return True
        return name == "guidance" and len(set(self.values("prompt", base))) > 1

    def __str__(self) -> str:
        return " ".join(str(dimension) for dimension in self.dimensions)


def parse_space(text: str, base: RunConfig) -> SearchSpace:
    """The space `text` describes, checked against the base configuration `base`."""
    items = text.split() or default_items(base)
    seen = set()
    for item in items:
        name = item.partition("=")[0]
        if name not in PARAMETERS:
            raise ValueError(
                f"unknown parameter {name!r} in the search space: expected some of {', '.join(PARAMETERS)}"
            )
        if name in seen:
            raise ValueError(f"parameter {name!r} appears twice in the search space")
        seen.add(name)
    dimensions = [_dimension(item, base) for item in items]
    order = list(PARAMETERS)
    space = SearchSpace(tuple(sorted(dimensions, key=lambda d: order.index(d.name))))
    space.check(base)
    return space


def default_items(base: RunConfig) -> list[str]:
    """The default space: what the backend `base.model` can use, prompt and guidance with a prompt."""
    if not uses_diffusion(base.model):
        return list(DEFAULT_CLASSICAL)
    return list(DEFAULT_DIFFUSION) + (["prompt", "guidance"] if base.prompt else [])


def default_masks(base: RunConfig) -> list[int]:
    """The three largest masks below `base.size` that divide it into a whole number of iterations per
    `base.step`: the study's 64, 128 and 256 at 512 px."""
    fitting = [mask for mask in range(1, base.size) if base.size % mask == 0
               and base.step * (base.size // mask) ** 2 % 100 == 0]
    return fitting[-3:]


def _default_mask_spec(base: RunConfig) -> str:
    masks = default_masks(base)
    if not masks:
        raise ValueError(
            f"search space: no mask divides size {base.size} into a whole number of iterations per step "
            f"{base.step}%; give another --size or --step"
        )
    return ",".join(map(str, masks))


def _dimension(item: str, base: RunConfig) -> Dimension:
    name, given, spec = item.partition("=")
    parameter = PARAMETERS[name]
    if name == "prompt":
        if given:
            raise ValueError("search space: prompt takes no values; give the text with --prompt TEXT")
        if not base.prompt:
            raise ValueError("search space: prompt compares the empty prompt with --prompt TEXT; give --prompt")
        return Dimension(name, choices=("", base.prompt))
    spec = spec if given else (_default_mask_spec(base) if name == "mask" else parameter.default)
    if not spec:
        raise ValueError(f"search space: {name} needs values, e.g. {parameter.example}")
    if parameter.kind in (int, float) and ":" in spec and "," not in spec:
        return _range(name, spec, parameter.kind)
    values = tuple(_convert(name, text.strip(), parameter.kind) for text in spec.split(","))
    if len(set(values)) != len(values):
        raise ValueError(f"search space {item}: a value is listed twice")
    return Dimension(name, choices=values)


def _range(name: str, spec: str, kind: type) -> Dimension:
    low, high, *scale = spec.split(":")
    if scale not in ([], ["log"]):
        raise ValueError(f"search space {name}={spec}: expected LOW:HIGH or LOW:HIGH:log")
    low, high = _convert(name, low, kind), _convert(name, high, kind)
    if low > high:
        raise ValueError(f"search space {name}={spec}: low {low} is above high {high}")
    if scale and low <= 0:
        raise ValueError(f"search space {name}={spec}: a log range needs a positive low end")
    return Dimension(name, bounds=(low, high), log=bool(scale))


def _convert(name: str, text: str, kind: type):
    if kind is bool and text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    if kind is str and text:
        return text
    try:
        if kind in (int, float):
            return kind(text)
    except ValueError:
        pass
    raise ValueError(f"search space: {text!r} is not a valid {kind.__name__} value for {name}")


def _applies(name: str, values: dict, base: RunConfig, guided_without_prompt: Callable[[str], bool]) -> bool:
    """Whether `name` matters given the values chosen so far (model, prompt)."""
    model = values.get("model", base.model)
    if PARAMETERS[name].diffusion and not uses_diffusion(model):
        return False
    return name != "guidance" or bool(values.get("prompt", base.prompt)) or guided_without_prompt(model)


def _format(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if value == "" else str(value)
