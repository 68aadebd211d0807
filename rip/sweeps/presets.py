"""Presets (experiments/*.yaml) -> a grid of configurations, each run as one MLflow run.

A preset overrides only what differs from RunConfig's defaults. A list expands into one
configuration per value (`mask: [64, 128, 256]`), and so does an integer range `seed: 0..9`
(inclusive); several lists give their product, the first key varying slowest. For `metrics`, a
list of names (or "a,b") is one value; a list of lists is a grid.
"""

import dataclasses
import itertools
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import yaml

from rip.config import RunConfig, parse_metrics
from rip.images import load_images, resolve_image_set

PRESET_FOLDER = Path(__file__).resolve().parents[2] / "experiments"  # the presets shipped with rip
_FIELDS = {field.name: field for field in dataclasses.fields(RunConfig)}


def find_preset(name: str | Path) -> Path:
    """The preset file: the path `name` or `name`.yaml, else the shipped preset called `name`
    (experiments/`name`.yaml in rip's folder), from any working directory."""
    candidates = [Path(name), Path(f"{name}.yaml")]
    if Path(name).name == str(name):  # a bare name, e.g. "demo"
        candidates.append(PRESET_FOLDER / f"{name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    presets = sorted(p.stem for p in PRESET_FOLDER.glob("*.yaml"))
    raise ValueError(f"no preset {str(name)!r}; shipped presets (in {PRESET_FOLDER}): {', '.join(presets) or 'none'}")


def load_preset(path: str | Path) -> dict:
    """The preset's mapping of RunConfig fields to values or lists of values."""
    path = find_preset(path)
    try:
        preset = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse preset {path}: {error}") from error
    if not isinstance(preset, dict):
        raise ValueError(f"preset {path} must be a mapping of configuration fields, got {type(preset).__name__}")
    return preset


def parse_overrides(items: Sequence[str]) -> dict:
    """`["mask=32", "seed=[0, 1]"]` -> {"mask": 32, "seed": [0, 1]} (values read as YAML)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"malformed override {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return overrides


def expand(preset: dict) -> list[RunConfig]:
    """Every configuration of the grid, in order (not validated: see `check`)."""
    unknown = [key for key in preset if key not in _FIELDS]
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; fields: {', '.join(_FIELDS)}")
    axes = {key: [_coerce(key, v) for v in _values(key, value)] for key, value in preset.items()}
    return [RunConfig(**dict(zip(axes, combination))) for combination in itertools.product(*axes.values())]


def check(configs: Sequence[RunConfig], resolve_images: bool = True) -> None:
    """Validate every configuration and (optionally) load every image set, before any run starts.

    Raises ValueError naming each bad configuration. `resolve_images=False` skips image sets
    that would be downloaded (wikiart:N); local ones are always read.
    """
    errors = []
    for index, config in enumerate(configs, 1):
        try:
            config.validate()
        except ValueError as error:
            errors.append(f"configuration {index} ({describe(config)}): {error}")
    if errors:
        raise ValueError("invalid configurations, nothing was run:\n  " + "\n  ".join(errors))
    loaded = set()
    for config in configs:
        if not resolve_images and config.images.startswith(("wikiart", "hf:")):
            continue
        sources = tuple(resolve_image_set(config.images, config.seed))
        if (sources, config.size) not in loaded:
            load_images(list(sources), config.size, config.pad_color, config.resample)
            loaded.add((sources, config.size))


def describe(config: RunConfig) -> str:
    """The fields that differ from the defaults, e.g. "mask=128 seed=3 images=wikiart:100"."""
    defaults = RunConfig()
    changed = {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(defaults, k) and k != "experiment"}
    return " ".join(f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in changed.items()) or "defaults"


def _values(key: str, value) -> list:
    """The grid axis of one preset entry."""
    if key == "metrics":
        if isinstance(value, list) and value and all(isinstance(v, (list, str)) for v in value) and any(
            isinstance(v, list) or "," in v for v in value
        ):
            return value  # a list of metric lists
        return [value]
    if isinstance(value, str) and ".." in value and _FIELDS[key].type is int:
        low, _, high = value.partition("..")
        try:
            return list(range(int(low), int(high) + 1))
        except ValueError:
            raise ValueError(f"{key}: malformed range {value!r}, expected e.g. 0..9") from None
    return value if isinstance(value, list) else [value]


def _coerce(key: str, value):
    """`value` as field `key` expects it; ValueError naming the field otherwise."""
    kind = _FIELDS[key].type
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{key} cannot be empty (null)")
    if key == "metrics":
        names = parse_metrics(value) if isinstance(value, str) else tuple(map(str, value))
        return names
    if int in options and isinstance(value, int) and not isinstance(value, bool):
        return value
    if float in options and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if bool in options and isinstance(value, bool):
        return value
    if str in options and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    expected = " or ".join(getattr(t, "__name__", str(t)) for t in options)
    raise ValueError(f"{key} must be {expected}, got {value!r}")
