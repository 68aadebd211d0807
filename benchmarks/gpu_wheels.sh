#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh needs on a GPU machine that has Python 3.12 and PyTorch but no
# package index: the project's packages such an image lacks (diffusers; MLflow's client, its SQLite
# store and what they import), at the versions this environment runs, for CPython 3.12 on x86-64
# Linux. Run it where pip reaches PyPI, from the repository's root; carry the folder it fills
# (default .whl/, which git ignores through .git/info/exclude) to the GPU machine beside the code.
#
#     bash benchmarks/gpu_wheels.sh            # -> .whl/ (about 25 MB)
#     RIP_WHEELS=/tmp/wheels RIP_WHEELS_PYTHON=3.11 bash benchmarks/gpu_wheels.sh   # elsewhere, for another Python
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=${RIP_WHEELS:-.whl}
# absent from the GPU image (its packages are listed in the workplace's notes); the rest it has
PACKAGES=(diffusers mlflow-skinny mlflow-tracing sqlalchemy alembic mako pydantic pydantic-core annotated-types
          typing-inspection fastapi starlette uvicorn databricks-sdk google-auth pyasn1 pyasn1-modules rsa
          cachetools opentelemetry-api opentelemetry-sdk opentelemetry-proto opentelemetry-semantic-conventions
          sqlparse importlib-metadata python-dotenv gitpython gitdb smmap cryptography cffi pycparser)
# the versions installed here, where the tests pass; the newest where a package is not installed
mapfile -t PINNED < <("$PYTHON" - "${PACKAGES[@]}" <<'EOF'
import sys
from importlib import metadata

for name in sys.argv[1:]:
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(name)
EOF
)
mkdir -p "$DEST"
if [[ "$DEST" != /* ]] && common=$(git rev-parse --git-common-dir 2>/dev/null); then  # keep it out of commits
    mkdir -p "$common/info"
    grep -qxF "/$DEST/" "$common/info/exclude" 2>/dev/null || echo "/$DEST/" >> "$common/info/exclude"
fi
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${RIP_WHEELS_PYTHON:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any --dest "$DEST" "${PINNED[@]}"
ls "$DEST"
du -sh "$DEST"
