"""`rip prefetch`: what configurations download, fetched ahead into the standard caches — the
model at its revision (in the variant its dtype loads), torchvision's backbones for LPIPS, the
drawn rows of Hugging Face datasets — then checked as a node without internet would start the
runs: with HF_HUB_OFFLINE set and every connection refused.

The caches are the Hugging Face cache (`$HF_HOME/hub`), torch's (`$TORCH_HOME/hub/checkpoints`)
and rip's dataset rows (`$RIP_CACHE/hf`): give compute nodes the same folders.
"""

import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from rip.artefacts import FID_INCEPTION
from rip.config import RunConfig, is_diffusers_model, is_hub_model
from rip.failures import USER_ERRORS
from rip.images import resolve_image_set
from rip.images.hub import cache_root

NO_NETWORK = "no network: rip prefetch checks what a node without internet has"


@dataclass
class Need:
    """One thing runs take from the internet, or from a cache filled from it."""

    name: str
    check: Callable[[], str]  # offline: what the caches hold (in words), or an error naming what is missing
    fetch: Callable[[], object] | None  # online: puts it into the caches; None when nothing can be fetched
    cache: Callable[[], Path]  # the folder that grows when it is fetched


class PrefetchError(RuntimeError):
    """Something runs need is not in the caches and could not be fetched."""


def prefetch(configs: Sequence[RunConfig], echo: Callable[[str], None] = print, features: Sequence[str] = ()) -> None:
    """Fetch what `configs` need into the caches, saying what and how much; then check that their
    runs start offline. `features`: feature networks of `rip analyze --features` to fetch too
    ("inception"). PrefetchError naming each thing still missing."""
    items = needs(configs) + [_inception() for name in dict.fromkeys(features) if name == "inception"]
    offline_mode = _hub_offline()
    missing, fetched = [], 0
    for item in items:
        before = _size(item.cache())
        try:
            with offline():
                held = item.check()
        except (*USER_ERRORS, OSError) as error:
            if item.fetch is None or offline_mode:
                missing.append(f"{item.name}: {error}")
                echo(f"  {item.name}: MISSING")
                continue
            echo(f"  {item.name}: fetching")
            try:
                item.fetch()
                with offline():
                    held = item.check()
            except (*USER_ERRORS, OSError) as failure:
                missing.append(f"{item.name}: {failure}")
                echo(f"  {item.name}: MISSING")
                continue
        grown = _size(item.cache()) - before
        fetched += grown
        echo(f"  {item.name}: {'fetched ' + _bytes(grown) if grown else 'already there'}: {held}")
    if missing:
        why = " (HF_HUB_OFFLINE is set: nothing was fetched)" if offline_mode else ""
        raise PrefetchError(f"{len(missing)} of {len(items)} thing(s) the runs need are not in the caches{why}:\n  "
                            + "\n  ".join(missing))
    echo(f"fetched {_bytes(fetched)}" if fetched else "nothing to fetch: everything was already in the caches")
    echo("checked offline (HF_HUB_OFFLINE=1, no network): the runs start from these caches: "
         f"{_hf_cache()}, {_torch_checkpoints()}, {cache_root()}")


def needs(configs: Sequence[RunConfig]) -> list[Need]:
    """What `configs` take from the internet, each thing once: models (per revision and dtype), LPIPS
    backbones, image sets."""
    found: dict[str, Need] = {}
    for config in configs:
        if is_diffusers_model(config.model):
            for dtype, device in _dtypes(config):
                item = _model(config, dtype, device)
                found.setdefault(item.name, item)
        for metric in config.metrics:
            if metric.startswith("lpips-"):
                item = _backbone(metric.removeprefix("lpips-"))
                found.setdefault(item.name, item)
        item = _images(config.images, config.seed)
        found.setdefault(item.name, item)
    return list(found.values())


@contextlib.contextmanager
def offline():
    """As on a node without internet: huggingface_hub in offline mode, and every connection refused."""
    from huggingface_hub import constants

    def refuse(*args, **kwargs):
        raise OSError(NO_NETWORK)

    with mock.patch.object(constants, "HF_HUB_OFFLINE", True), \
            mock.patch.object(socket, "getaddrinfo", refuse), \
            mock.patch.object(socket, "create_connection", refuse), \
            mock.patch.object(socket.socket, "connect", refuse), \
            mock.patch.object(socket.socket, "connect_ex", refuse):
        yield


def _dtypes(config: RunConfig) -> list[tuple[str, str]]:
    """(dtype, device) pairs the runs of `config` load the model for: with dtype and device auto on a
    machine without CUDA, both CUDA (the family's half precision) and other devices (fp32)."""
    if config.dtype != "auto":
        return [(config.dtype, "cpu")]
    if config.device == "auto":
        import torch

        return [("auto", "cuda")] if torch.cuda.is_available() else [("auto", "cuda"), ("auto", "cpu")]
    return [("auto", "cuda" if config.device.startswith("cuda") else "cpu")]


def _model(config: RunConfig, dtype: str, device: str) -> Need:
    from rip.inpainters.diffusion import load_pipeline

    model, revision = config.model, config.revision
    named = {"auto": "fp16" if device == "cuda" else "fp32"}.get(dtype, dtype)  # the files: fp16 variants on CUDA
    files = "fp16 variant where it has one" if named == "fp16" else named
    at = f" @ {revision[:12]}" if revision else ""

    def load() -> str:
        with _no_loading_bars():  # the downloads keep theirs
            _, loaded, _ = load_pipeline(model, dtype, device=device, revision=revision,
                                         safety_checker=config.safety_checker)
        size = sum(file.size for file in loaded.files)
        return (f"{len(loaded.files)} weight file(s), {_bytes(size)}, {loaded.revision}"
                + (f", {loaded.variant} variant" if loaded.variant else ""))

    hub = is_hub_model(model)
    cache = (lambda: _hf_cache() / f"models--{model.replace('/', '--')}") if hub else (lambda: Path(model))
    return Need(f"model {model}{at} ({files})", load, load if hub else None, cache)


@contextlib.contextmanager
def _no_loading_bars():
    """Without diffusers' and transformers' bars over the components and weights they load."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    shown = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown[0]:
            diffusers_logging.enable_progress_bar()
        if shown[1]:
            transformers_logging.enable_progress_bar()


def _backbone(net: str) -> Need:
    from rip.metrics import MetricUnavailableError
    from rip.metrics.lpips_metrics import backbone_path, ensure_backbones

    def check() -> str:
        path = Path(backbone_path(net))
        if not path.is_file():
            raise MetricUnavailableError(f"{path} is missing (torchvision's ImageNet backbone for lpips-{net})")
        return f"{path.name}, {_bytes(path.stat().st_size)}"

    return Need(f"lpips-{net} backbone", check, lambda: ensure_backbones([net], progress=True), _torch_checkpoints)


def _inception() -> Need:
    """torch-fidelity's FID Inception-v3 weights, for `rip analyze --features inception`."""
    path = _torch_checkpoints() / FID_INCEPTION.file

    def check() -> str:
        if not path.is_file():
            raise OSError(f"{path} is missing (the FID Inception-v3 weights of rip analyze --features inception)")
        return f"{path.name}, {_bytes(path.stat().st_size)}"

    return Need("FID Inception-v3 weights", check, lambda: fetch_fid_inception(path), _torch_checkpoints)


def fetch_fid_inception(path: Path, progress: bool = True) -> None:
    """Download torch-fidelity's FID Inception-v3 weights to `path`, checked against the SHA-256 prefix
    their file name carries (OSError, e.g. URLError, when the download fails)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(FID_INCEPTION.url, str(path), torch.hub.HASH_REGEX.search(path.name).group(1),
                                   progress=progress)


def _images(spec: str, seed: int) -> Need:
    def check() -> str:
        sources = resolve_image_set(spec, seed)
        files = [Path(source.origin) for source in sources if Path(source.origin).is_file()]
        return f"{len(sources)} image(s)" + (f", {_bytes(sum(f.stat().st_size for f in files))}" if files else "")

    def fetch():
        resolve_image_set(spec, seed, progress=True)

    return Need(f"images {spec} (seed {seed})", check, fetch, cache_root)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hf_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _torch_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _size(folder: Path) -> int:
    """Bytes of the files below `folder`, links not followed (a hub cache's snapshots link to its blobs)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"
