"""Image sets from Hugging Face datasets stored as parquet, WikiArt among them.

`hf:REPO[@REVISION][:SPLIT]:N[@S]` draws N rows of a dataset's split at one revision. REPO is a
hub dataset id (OWNER/NAME) or a local folder holding a dataset's parquet files (a clone of its
repository, or files written by `datasets.Dataset.to_parquet`). Only the parquet footers and the
row groups holding drawn rows are read; each image is cached as PNG with its labels (every
column but the image, ClassLabel indices turned into their names) beside it as JSON.
"""

import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from rip import artefacts
from rip.images.letterbox import to_rgb
from rip.images.source import Collection, SourceImage, draw_indices

logger = logging.getLogger(__name__)

WIKIART_REPO = artefacts.WIKIART.id
WIKIART_REVISION = artefacts.WIKIART.revision  # pinned: indices must not move
WIKIART = f"hf:{WIKIART_REPO}@{WIKIART_REVISION}:train"
_HEAD = re.compile(r"hf:(?P<repo>[^@:]+?)(?:@(?P<revision>[^:]+))?(?::(?P<split>[A-Za-z_][\w.-]*))?")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class HubDataset:
    """One split of a dataset at one revision."""

    repo: str  # OWNER/NAME on the hub, or a local folder
    revision: str  # a commit of the hub repository; for a folder, a digest of its parquet files
    split: str

    @property
    def local(self) -> bool:
        return Path(self.repo).expanduser().is_dir()

    @property
    def name(self) -> str:
        """The dataset's short name, the prefix of its image ids (wikiart-00042)."""
        return _UNSAFE.sub("_", Path(self.repo.rstrip("/")).name.lower())

    @property
    def collection(self) -> Collection:
        return Collection("parquet" if self.local else "hub", self.repo, self.revision, self.split)

    @property
    def cache(self) -> Path:
        """Where its images are kept: `$RIP_CACHE/hf/OWNER--NAME/REVISION/SPLIT`."""
        repo = "local--" + self.name if self.local else self.repo.replace("/", "--")
        return cache_root() / repo / self.revision / self.split


def cache_root() -> Path:
    """Where dataset rows are kept: `$RIP_CACHE/hf` (default `~/.cache/rip/hf`)."""
    return Path(os.environ.get("RIP_CACHE") or Path.home() / ".cache" / "rip").expanduser() / "hf"


def parse_dataset(head: str, spec: str) -> HubDataset:
    """`hf:REPO[@REVISION][:SPLIT]` -> the dataset, its revision resolved (a hub call if unpinned)."""
    match = _HEAD.fullmatch(head)
    if not match:
        raise ValueError(f"malformed dataset {head!r} in {spec!r}: expected hf:OWNER/NAME[@REVISION][:SPLIT]:N")
    repo, revision, split = match["repo"], match["revision"], match["split"] or "train"
    if Path(repo).expanduser().is_dir():
        if revision:
            raise ValueError(f"{spec!r}: a local folder has no revision; drop @{revision}")
        folder = Path(os.path.abspath(Path(repo).expanduser()))
        return HubDataset(str(folder), _folder_digest(folder), split)
    if repo.count("/") != 1:
        raise ValueError(f"{spec!r}: {repo!r} is neither an existing folder nor a hub dataset id OWNER/NAME")
    return HubDataset(repo, revision or _latest_revision(repo, spec), split)


def dataset_images(dataset: HubDataset, count: int, seed: int, spec: str, progress: bool = False) -> list:
    """`count` rows of `dataset` drawn with `seed`, downloaded into its cache when missing (with a
    progress bar if `progress`)."""
    folder = dataset.cache
    try:
        manifest = _manifest(dataset, folder)
        indices = draw_indices(sum(manifest["rows"]), count, seed, spec)
        missing = [index for index in indices if not (folder / f"{index:05d}.png").is_file()]
        if missing:
            _download(dataset, manifest, missing, folder, progress)
    except ValueError:
        raise
    except Exception as error:  # OSError, and the hub client's own network errors, which are not OSErrors
        raise RuntimeError(
            f"{spec} needs images that are not in the cache {folder}, and reading them from "
            f"{_where(dataset)} failed ({error}). Run `rip prefetch` with the same options where huggingface.co "
            "can be reached "
            f"(or `hf download --repo-type dataset {dataset.repo} --revision {dataset.revision}` elsewhere "
            "and pass the folder as hf:FOLDER)."
        ) from error
    return [
        SourceImage(
            f"{dataset.name}-{index:05d}",
            str(folder / f"{index:05d}.png"),
            labels=tuple(sorted(json.loads((folder / f"{index:05d}.json").read_text()).items())),
            collection=dataset.collection,
        )
        for index in indices
    ]


def rows_cached(dataset: HubDataset, count: int, seed: int, spec: str) -> bool:
    """Whether the `count` rows that `seed` draws of `dataset` are all in its cache (no network asked)."""
    path = dataset.cache / "manifest.json"
    if not path.is_file():
        return False
    indices = draw_indices(sum(json.loads(path.read_text())["rows"]), count, seed, spec)
    return all((dataset.cache / f"{index:05d}.png").is_file() for index in indices)


def _manifest(dataset: HubDataset, folder: Path) -> dict:
    """The split's parquet files, their row counts and the dataset's features (cached)."""
    path = folder / "manifest.json"
    if path.is_file():
        return json.loads(path.read_text())
    fs, root = _filesystem(dataset)
    files = sorted(
        file for file in fs.find(root) if file.endswith(".parquet") and _in_split(file[len(root):], dataset.split)
    )
    if not files:
        raise ValueError(f"no parquet files of split {dataset.split!r} in {_where(dataset)}")
    import pyarrow.parquet as pq

    rows, features = [], {}
    for file in files:
        with fs.open(file, "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
        rows.append(metadata.num_rows)
        features = features or _features(metadata)
    manifest = {"files": [file[len(root):].lstrip("/") for file in files], "rows": rows, "features": features}
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps(manifest))
    os.replace(partial, path)
    return manifest


def _download(dataset: HubDataset, manifest: dict, indices: list[int], folder: Path, progress: bool) -> None:
    """Save rows `indices` (sorted) as PNG + labels JSON, reading only the row groups holding them."""
    from tqdm.auto import tqdm

    with tqdm(total=len(indices), unit="image", desc=f"{dataset.name} rows", disable=not progress) as bar:
        _read_rows(dataset, manifest, indices, folder, bar)


def _read_rows(dataset: HubDataset, manifest: dict, indices: list[int], folder: Path, bar) -> None:
    import pyarrow.parquet as pq

    fs, root = _filesystem(dataset)
    wanted, start = list(indices), 0
    for name, rows in zip(manifest["files"], manifest["rows"]):
        if not wanted:
            break
        if wanted[0] >= start + rows:
            start += rows
            continue
        with fs.open(f"{root}/{name}", "rb") as file:
            parquet = pq.ParquetFile(file, buffer_size=1 << 20, pre_buffer=False)
            for group in range(parquet.num_row_groups):
                end = start + parquet.metadata.row_group(group).num_rows
                here = [index for index in wanted if index < end]
                if here:
                    logger.info("%s: reading %d image(s) from %s", dataset.repo, len(here), name)
                    _save_rows(parquet, group, start, here, folder, manifest["features"])
                    bar.update(len(here))
                    wanted = wanted[len(here):]
                start = end
    if wanted:
        raise ValueError(f"{dataset.repo} ({dataset.split}) has {start} rows, index {wanted[0]} does not exist")


def _save_rows(parquet, group: int, group_start: int, indices: list[int], folder: Path, features: dict) -> None:
    """Save rows `indices` (global, sorted, all in row group `group`)."""
    image_column = _image_column(parquet.schema_arrow.names, features)
    position = group_start
    for batch in parquet.iter_batches(batch_size=16, row_groups=[group]):
        for offset, row in enumerate(batch.to_pylist()):
            if position + offset not in indices:
                continue
            stem = folder / f"{position + offset:05d}"
            labels = {key: _label(value, features.get(key)) for key, value in row.items() if key != image_column}
            _write(stem.with_suffix(".json"), json.dumps(labels).encode())
            image = to_rgb(ImageOps.exif_transpose(Image.open(io.BytesIO(row[image_column]["bytes"]))))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            _write(stem.with_suffix(".png"), buffer.getvalue())  # the PNG last: it marks a complete row
        position += batch.num_rows
        if position > indices[-1]:
            break


def _write(path: Path, data: bytes) -> None:
    """Write atomically: never leave a truncated file behind."""
    partial = path.with_suffix(f"{path.suffix}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def _features(metadata) -> dict:
    """Column name -> feature description, from the schema metadata `datasets` writes."""
    raw = (metadata.schema.to_arrow_schema().metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    info = json.loads(raw).get("info", {})
    return info.get("features", {}) or {}


def _image_column(names: list[str], features: dict) -> str:
    """The column holding the images: the Image feature, else `image` or `img`."""
    for name in names:
        if (features.get(name) or {}).get("_type") == "Image":
            return name
    for name in ("image", "img"):
        if name in names:
            return name
    raise ValueError(f"no image column among {', '.join(names)}")


def _label(value, feature: dict | None) -> str:
    """A label as text: ClassLabel indices as their names."""
    names = (feature or {}).get("names")
    if names and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return "" if value is None else str(value)


def _in_split(relative: str, split: str) -> bool:
    """Hub layouts: data/SPLIT-00000-of-00001.parquet, SPLIT/xxx.parquet, SPLIT.parquet."""
    parts = Path(relative.lstrip("/")).parts
    stem = Path(parts[-1]).stem
    return split in parts[:-1] or stem == split or re.match(rf"{re.escape(split)}[-_.]", parts[-1]) is not None


def _filesystem(dataset: HubDataset):
    """An fsspec file system and the dataset's root in it."""
    if dataset.local:
        import fsspec

        return fsspec.filesystem("file"), dataset.repo.rstrip("/")
    from huggingface_hub import HfFileSystem

    return HfFileSystem(), f"datasets/{dataset.repo}@{dataset.revision}"


def _latest_revision(repo: str, spec: str) -> str:
    """The current commit of a hub dataset, so that the run records which one it read."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return HfApi().dataset_info(repo).sha
    except (OSError, HfHubHTTPError) as error:
        raise RuntimeError(
            f"{spec}: cannot ask huggingface.co for the current revision of {repo} ({error}); "
            f"pin one as hf:{repo}@COMMIT to use the cache offline"
        ) from error


def _folder_digest(folder: Path) -> str:
    """A digest of a local dataset's parquet files (names, sizes, times): its revision."""
    entries = sorted(
        f"{path.relative_to(folder)}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
        for path in folder.rglob("*.parquet")
    )
    return "local-" + hashlib.blake2b("\n".join(entries).encode(), digest_size=8).hexdigest()


def _where(dataset: HubDataset) -> str:
    return dataset.repo if dataset.local else f"huggingface.co ({dataset.repo}@{dataset.revision[:12]})"
