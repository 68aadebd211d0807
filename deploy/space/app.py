"""`rip demo` as a Hugging Face Space (see README.md beside this file: how the Space is assembled).

On a GPU the Space first fetches what the study's defaults need (Stable Diffusion 2 inpainting at its
pinned commit, LPIPS's backbones) with `rip prefetch`, so the page offers them; on a CPU it offers
the classical inpainters and the metrics that need no download. Runs go to $MLFLOW_TRACKING_URI (a
Space variable; default a SQLite store in the Space's folder, lost when the Space restarts).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # rip/ and analysis/, copied beside this file

EXPERIMENT = os.environ.get("RIP_DEMO_EXPERIMENT", "demo")


def fetch_study_defaults() -> None:
    """On a GPU, put the study's model and LPIPS's backbones into the caches (once per Space start)."""
    import torch

    from rip.config import RunConfig
    from rip.prefetch import PrefetchError, prefetch

    if not torch.cuda.is_available() or os.environ.get("RIP_DEMO_FETCH", "true") == "false":
        return
    try:
        prefetch([RunConfig(images="sample")])
    except PrefetchError as error:  # the page offers what did arrive
        print(error, file=sys.stderr)


def main() -> None:
    import mlflow

    from rip.demo.cli import MAX_UPLOAD, make_app
    from rip.tracking.store import use_local_stores

    fetch_study_defaults()
    use_local_stores()
    app, runner = make_app(mlflow.get_tracking_uri(), EXPERIMENT)
    try:
        # the Space sets GRADIO_SERVER_NAME and GRADIO_SERVER_PORT
        app.launch(ssr_mode=False, max_file_size=MAX_UPLOAD)
    finally:
        runner.stop_all()


if __name__ == "__main__":
    main()
