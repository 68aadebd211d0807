"""Where a diffusers model's files come from: its model index from the Hugging Face hub (or its
cache, or a folder), why it cannot be had, and what was loaded — the commit, the variant and the
SHA-256 of each weight file.

For a hub model the cache already names each weight file by its SHA-256 (the blob of an LFS
file is named by its LFS object id, the SHA-256 of its content), so identifying what was loaded
reads no weights; the files of a local folder are hashed.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from rip import artefacts
from rip.inpainters.base import ModelUnavailableError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")


@dataclass(frozen=True)
class WeightFile:
    """One weight file of a loaded model."""

    path: str  # relative to the model's folder, e.g. unet/diffusion_pytorch_model.safetensors
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelFiles:
    """What a loaded model is: its name, the commit (or folder) its files came from, the variant and
    the weight files."""

    model: str
    revision: str  # a commit hash, local:FOLDER, or a built-in's name
    variant: str = ""  # "fp16", or "" for the repository's default weights
    files: tuple[WeightFile, ...] = ()

    @property
    def digest(self) -> str:
        """12 hex digits identifying the weights' content, whatever their folder or commit."""
        listing = "".join(f"{file.path} {file.sha256}\n" for file in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(listing.encode()).hexdigest()[:12]

    def published(self) -> str:
        """Whether the weights are those whose SHA-256 is publicly quoted for this model: a one-line verdict."""
        expected = artefacts.published_hashes(self.model)
        if not expected:
            return "not compared: no published hashes for this model"
        if self.variant:
            return f"not compared: the {self.variant} variant was loaded, the published hashes are of the fp32 files"
        loaded: dict[str, list[WeightFile]] = {}
        for file in self.files:
            loaded.setdefault(file.path.split("/")[0], []).append(file)
        differing = []
        for component, sha256 in expected.items():
            files = loaded.get(component, [])
            if len(files) != 1 or files[0].sha256 != sha256:
                found = ", ".join(file.sha256[:12] for file in files) or "no file"
                differing.append(f"{component} (loaded {found}, published {sha256[:12]})")
        if differing:
            return "no match: " + "; ".join(differing)
        return "match: " + ", ".join(expected)

    def as_json(self) -> dict:
        """Everything above, JSON-ready (the `model_files.json` artifact)."""
        expected = artefacts.published_hashes(self.model)
        return {
            "model": self.model,
            "revision": self.revision,
            "variant": self.variant or None,
            "digest": self.digest,
            "files": [{"path": file.path, "sha256": file.sha256, "size": file.size} for file in self.files],
            "published_sha256": expected or None,
            "published": self.published(),
        }


def model_index(model: str, revision: str, local_only: str) -> tuple[dict, Path]:
    """The model's model_index.json and the folder holding it (a local folder, or the cache's
    snapshot of the commit); ModelUnavailableError in one line when it cannot be had.

    `revision`: a commit, branch or tag ('' = the default branch); `local_only` (why the hub is out
    of reach, or empty) limits the search to the cache.
    """
    if Path(model).is_dir():
        path = Path(model) / "model_index.json"
        if not path.is_file():
            raise ModelUnavailableError(f"cannot load inpainting model {model!r}: the folder has no model_index.json "
                                        "(not a diffusers pipeline saved with save_pretrained)")
        return json.loads(path.read_text()), Path(model)
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(model, "model_index.json", revision=revision or None,
                                    local_files_only=bool(local_only)))
    except Exception as error:  # huggingface_hub's errors, classified below; others pass through
        raise hub_error(model, revision, local_only, error) from error
    return json.loads(path.read_text()), path.parent


def hub_error(model: str, revision: str, local_only: str, error: Exception) -> Exception:
    """`error`, raised while asking the hub (or its cache) for `model`, as one line for the user."""
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError, HfHubHTTPError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    at = f" at revision {revision}" if revision else ""
    if isinstance(error, GatedRepoError):
        return ModelUnavailableError(
            f"model {model!r} is gated on the Hugging Face hub: accept its conditions on "
            f"https://huggingface.co/{model} with your account, then give this machine a token (set HF_TOKEN, "
            "or run `hf auth login`)"
        )
    removed = model == artefacts.REMOVED_MODEL.id
    if removed and isinstance(error, (RepositoryNotFoundError, LocalEntryNotFoundError)):
        mirror = artefacts.STUDY_MODEL
        return ModelUnavailableError(
            f"model {model!r} was removed from the Hugging Face hub (November 2025) and this machine's cache does not "
            f"hold it; the study's default is now its community mirror {mirror.id} (pinned at "
            f"{mirror.revision[:12]}): leave --model out, or pass --model {mirror.id}"
        )
    if isinstance(error, RepositoryNotFoundError):
        return ModelUnavailableError(
            f"cannot load inpainting model {model!r}: no such repository on the Hugging Face hub (if it is "
            "private, set HF_TOKEN or run `hf auth login`)"
        )
    if isinstance(error, RevisionNotFoundError):
        return ModelUnavailableError(f"cannot load inpainting model {model!r}: it has no revision {revision!r}")
    if isinstance(error, LocalEntryNotFoundError):
        reason = local_only or "the hub could not be reached"
        return ModelUnavailableError(
            f"cannot load inpainting model {model!r}{at}: it is not (fully) in the Hugging Face cache and {reason}. "
            f"Fetch it where there is internet (`rip prefetch --model {model}`, or `hf download {model}`) into the "
            "Hugging Face cache, or pass a local folder."
        )
    if isinstance(error, EntryNotFoundError):
        return ModelUnavailableError(
            f"cannot load inpainting model {model!r}{at}: it has no model_index.json (not a diffusers pipeline)"
        )
    if isinstance(error, (HfHubHTTPError, HFValidationError, OSError)):
        return ModelUnavailableError(f"cannot load inpainting model {model!r}{at}: {first_line(error)}")
    return error


def revision_of(model: str, folder: Path) -> str:
    """What `folder` (from `model_index`) is: the commit of a hub snapshot, or local:FOLDER."""
    if Path(model).is_dir():
        return f"local:{Path(model).resolve()}"
    return folder.name  # the cache's snapshots/<commit>/


def loaded_files(model: str, folder: Path, index: dict, variant: str, left_out: set[str]) -> ModelFiles:
    """The weight files a pipeline loaded from `folder`: per component of `index` (but those in
    `left_out`), its `variant` files where it has them, else its default ones; safetensors where
    there are both."""
    files = []
    for component, spec in sorted(index.items()):
        if component.startswith("_") or component in left_out or not (isinstance(spec, list) and spec[0]):
            continue
        candidates = [path for path in sorted((folder / component).glob("*")) if path.name.endswith(WEIGHT_SUFFIXES)]
        chosen = [path for path in candidates if _variant(path.name) == variant] if variant else []
        chosen = chosen or [path for path in candidates if _variant(path.name) == ""]
        if any(path.suffix == ".safetensors" for path in chosen):
            chosen = [path for path in chosen if path.suffix == ".safetensors"]
        files += [WeightFile(f"{component}/{path.name}", sha256_of(path), path.stat().st_size) for path in chosen]
    used = variant if variant and any(_variant(file.path) == variant for file in files) else ""
    return ModelFiles(model, revision_of(model, folder), used, tuple(files))


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file: a hub cache's blob name where it is one, else computed."""
    target = path.resolve()
    if path.is_symlink() and _SHA256.match(target.name):
        return target.name
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        while chunk := handle.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _variant(name: str) -> str:
    """'diffusion_pytorch_model.fp16.safetensors' -> 'fp16'; 'model.fp16-00001-of-00002.safetensors' -> 'fp16';
    a file of the default weights -> ''."""
    parts = Path(name).name.split(".")
    return _SHARD.sub("", parts[1]) if len(parts) == 3 else ""
