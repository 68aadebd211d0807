"""The names of every MLflow tag, image key, run kind and run-level metric the project writes, in one place.

The tracking layer writes them and the analysis reads them; this module imports nothing, so
reading a store never loads the inpainting stack.
"""

# run kinds (tag KIND_TAG)
KIND_TAG = "rip.kind"
CONFIGURATION = "configuration"  # one (image set, mask, seed, ...) configuration: the parent run
IMAGE = "image"  # one image of a configuration: a nested child run
LAUNCHER = "launcher"  # the run `mlflow run -P resume=ID` made, which only launched the resumed run
STUDY = "study"  # an Optuna search
ANALYSIS = "analysis"  # the outputs of `rip analyze --log`

# every run of a configuration
CONFIG_TAG = "rip.config"  # the configuration as JSON: the canonical record
BACKEND_TAG = "rip.backend"  # the inpainter's name
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
PROJECT_TAG = "mlflow.project.entryPoint"  # on runs `mlflow run` made (it names them at random)
RESUMES_TAG = "rip.resumes"  # on a launcher run: the run it resumed

# image runs
IMAGE_TAG = "rip.image_id"
IMAGE_ORIGIN_TAG = "rip.image_origin"  # the image's file, sample name or dataset row
LABEL_TAG = "rip.label"  # rip.label.style, rip.label.genre, ...: the image's labels in its data set
FAILURE_TAG = "rip.failure"  # on a FAILED image run: the image, the iteration and why

# inpainters
TINY_TAG = "rip.meaningless_images"  # a randomly initialised pipeline: its images mean nothing
SAFETY_CHECKER_TAG = "rip.model_safety_checker"  # whether the model ships a safety checker
MODEL_SHA256_TAG = "rip.model_sha256"  # 12 hex digits identifying the loaded weight files' content
PUBLISHED_SHA256_TAG = "rip.model_published_sha256"  # whether those files are the publicly quoted ones

# sweeps
SWEEP_TAG = "rip.sweep"  # the preset's name, on every configuration run of the sweep
SWEEP_ID_TAG = "rip.sweep_id"  # one id per invocation, or per shared sweep (drawn when it is registered)
SWEEP_KEY_TAG = "rip.sweep_key"  # on a shared sweep's configuration runs: the study that holds its units
CONFIG_HASH_TAG = "rip.config_hash"  # on a sweep's configuration runs: the configuration's hash

# searches
STUDY_TAG = "rip.study"  # the study's name, on the study run and on every trial run
TRIAL_TAG = "rip.trial"  # the trial's number
STATE_TAG = "rip.trial_state"  # COMPLETE, PRUNED or FAIL
WORKER_TAG = "rip.worker"  # host:pid of the worker that ran the trial
RETRY_TAG = "rip.retry_of"  # on a retried trial: the number of the trial whose worker died
SPACE_TAG = "rip.space"  # on the study run: the searched space, e.g. "mask=64,128 steps=10:50:log"
BEST_TRIAL_TAG = "rip.best_trial"  # on the study run
BEST_RUN_TAG = "rip.best_run"  # on the study run
BEST_PARAM_TAG = "rip.best"  # rip.best.<parameter>, on the study run

# a configuration run's inputs (rip.tracking.lineage)
IMAGES_CONTEXT = "images"  # the context of the image set's dataset input
MODEL_FILES_ARTIFACT = "model_files.json"  # the weight files loaded, with their SHA-256

# image runs' artifacts, besides original.png and generations/{percent:04d}.png
ANIMATION_ARTIFACT = "animation.webp"  # every checkpoint as an animated WebP (rip.images.animation)
ANIMATION_PAGE_ARTIFACT = "animation.html"  # the same, embedded in a page: the UI's artifact view plays it

# configuration runs: what `rip analyze` computed from their images and logged back (analysis.collection)
SET_CACHE_TAG = "rip.set_cache"  # rip.set_cache.<part>: a digest of the image runs and checkpoints the part used
SET_CACHE_FOLDER = "set-measures"  # the artifact folder holding each part's values
SET_PREFIX = "set-"  # set-diversity-<metric>, set-kid-<features>, ...: metrics at step = percent

# image keys (MLflow's log_image), at step = percent inpainted
UI_IMAGE_KEY = "generation"  # image runs: the generation (the original at 0)
GRID_KEY = "generation_grid"  # configuration runs: every image's generation side by side

# configuration runs' own metrics, besides the measured ones' *_mean and *_std
SYSTEM_PREFIX = "system/"  # MLflow's system metrics (CPU, memory, disk, network, GPU), sampled while the run is open
INPAINTINGS_PER_S = "perf/inpaintings_per_s"  # this attempt's inpaintings over its time in the engine
PEAK_GPU_MEMORY = "perf/peak_gpu_memory_megabytes"  # CUDA: the most memory torch allocated, weights included
BATCH_SIZE_USED = "perf/batch_size"  # images per inpainter call in the engine that ran the configuration
