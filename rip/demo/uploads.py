"""An uploaded picture as an image set: a folder named after its content, so a run of it can be repeated."""

import hashlib
import os
import re
import shutil
import warnings
from pathlib import Path

from PIL import Image

from rip.images.sets import IMAGE_EXTENSIONS

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
DIGEST_CHARS = 10  # of the file's SHA-256, in the folder's name


def uploads_root() -> Path:
    """Where uploads are kept: `$RIP_CACHE/uploads` (default `~/.cache/rip/uploads`)."""
    return Path(os.environ.get("RIP_CACHE") or Path.home() / ".cache" / "rip").expanduser() / "uploads"


def store_upload(path: str | Path, root: Path | None = None) -> str:
    """Check that `path` is an image a run can read, keep it as `ROOT/NAME-DIGEST/NAME.EXT`, and
    return that folder: the image set of a run on it. ValueError naming the file when it is not an
    image, or has more pixels than Pillow decodes safely (`Image.MAX_IMAGE_PIXELS`)."""
    path = Path(path)
    name = _UNSAFE.sub("_", path.stem).strip("_")[:40] or "upload"
    image_format = _check_image(path)
    extension = path.suffix.lower()
    if extension not in IMAGE_EXTENSIONS:
        extension = "." + image_format.lower().replace("jpeg", "jpg")
    if extension not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path.name} is a {image_format} image; runs read {', '.join(IMAGE_EXTENSIONS)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:DIGEST_CHARS]
    folder = (root or uploads_root()) / f"{name}-{digest}"
    target = folder / f"{name}{extension}"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
    return str(folder)


def _check_image(path: Path) -> str:
    """The file's image format, after decoding it fully; ValueError naming the file when that fails."""
    try:
        with warnings.catch_warnings():
            # a picture over MAX_IMAGE_PIXELS is refused, not decoded with a warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.format or ""
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ValueError(f"{path.name} is too large: {error}") from None
    except Exception as error:  # decoders raise many types on corrupt data
        raise ValueError(f"{path.name} is not an image a run can read ({error})") from None
