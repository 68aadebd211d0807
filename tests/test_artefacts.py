"""Everything the project downloads is pinned in rip/artefacts.py, and nothing else is named:
a removed or renamed artefact is then found in one place."""

import ast
import re
from pathlib import Path

import pytest
import torchvision
import yaml

from rip import artefacts
from rip.config import RunConfig
from rip.metrics.lpips_metrics import BACKBONE_WEIGHTS, backbone_url

ROOT = Path(__file__).resolve().parent.parent
CODE = [*ROOT.glob("rip/**/*.py"), *ROOT.glob("analysis/**/*.py"), *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("scripts/*.py")]
TEXTS = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("experiments/*.yaml"), ROOT / "MLproject",
         *ROOT.glob("deploy/*.yaml")]
HUB_ID = r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*[A-Za-z0-9]"
# where a hub id is written: in backquotes, as an image set, in a hub address, as a model, for `hf download`
CONTEXTS = [re.compile(pattern.format(id=HUB_ID)) for pattern in (
    r"`({id})`", r"\bhf:({id})", r"huggingface\.co/(?:datasets/)?({id})", r"(?:--model|\bmodel\s*[:=])\s*[\"'`]?({id})",
    r"hf download (?:--repo-type \w+ )?({id})", r"\bdefault:\s*[\"']?({id})", r"^({id})$")]
OUTPUT_FOLDERS = {"outputs", "figures", "statistics", "generations", "originals", "plots"}  # what rip writes, not what it reads
MLFLOW_ROUTES = {"metrics/get-history-bulk", "metrics/get-history-bulk-interval"}  # REST routes the analysis reads
METRIC_NAMESPACES = {"system", "perf"}  # metric keys the runs log: system/cpu_utilization_percentage, perf/…


def hub_ids_in(path: Path) -> set[str]:
    """Hub ids (OWNER/NAME) that `path` names: in the contexts above, and any Python string that is one."""
    text = path.read_text()
    found = {match.group(1) for pattern in CONTEXTS[:-1] for match in pattern.finditer(text)}
    if path.suffix == ".py":
        found |= {node.value for node in ast.walk(ast.parse(text))
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and CONTEXTS[-1].match(node.value)}
    return {token for token in found if not _not_a_hub_id(token)}


def _not_a_hub_id(token: str) -> bool:
    owner, name = token.split("/", 1)
    return (owner.isupper() or token in MLFLOW_ROUTES  # a placeholder (OWNER/NAME), an MLflow route
            or owner in OUTPUT_FOLDERS or (ROOT / token).exists()  # a file of the project or of its outputs
            or owner in METRIC_NAMESPACES
            or re.search(r"\.(py|md|ya?ml|png|csv|json|txt|html|pdf|svg)$", name) is not None)


@pytest.mark.parametrize("path", CODE + TEXTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_hub_id_named_is_registered(path):
    assert hub_ids_in(path) <= artefacts.hub_ids()


def test_the_scan_finds_hub_ids():
    """The scan above sees the ids it must check (so an empty result means something)."""
    assert hub_ids_in(ROOT / "README.md") >= {artefacts.STUDY_MODEL.id, artefacts.WIKIART.id}
    assert hub_ids_in(ROOT / "MLproject") == {artefacts.STUDY_MODEL.id}
    assert hub_ids_in(ROOT / "rip" / "artefacts.py") == artefacts.hub_ids()
    assert hub_ids_in(ROOT / "docs" / "artefacts.md") == artefacts.hub_ids()


def test_the_removed_model_is_named_only_to_explain_it():
    named = {str(path.relative_to(ROOT)) for path in CODE + TEXTS if artefacts.REMOVED_MODEL.id in path.read_text()}
    assert named == {"rip/artefacts.py", "README.md", "docs/artefacts.md"}


def test_defaults_presets_and_the_mlproject_use_pinned_artefacts():
    pinned = {model.id: model.revision for model in artefacts.MODELS if model.revision}
    assert RunConfig().model in pinned and RunConfig().revision == pinned[RunConfig().model]
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    for entry in ("main", "tune"):
        parameters = project["entry_points"][entry]["parameters"]
        assert parameters["model"]["default"] in pinned and parameters["model_revision"]["default"] == ""
        assert "--model-revision {model_revision}" in project["entry_points"][entry]["command"]
    # a registered model without a commit says why (no public source quotes one): it loads its default branch
    unpinned = {model.id for model in artefacts.MODELS if not model.revision and "no commit pinned" in model.note}
    for preset in ROOT.glob("experiments/*.yaml"):
        models = yaml.safe_load(preset.read_text()).get("model", RunConfig().model)
        for model in models if isinstance(models, list) else [models]:
            assert model in pinned or model in unpinned or "/" not in model, (preset.name, model)


def test_the_registry_is_what_the_code_loads():
    for model in artefacts.MODELS:
        assert model.revision == "" or re.fullmatch(r"[0-9a-f]{40}", model.revision)
        assert all(re.fullmatch(r"[0-9a-f]{64}", sha256) for sha256 in model.published_sha256.values())
    assert re.fullmatch(r"[0-9a-f]{40}", artefacts.WIKIART.revision)
    assert set(artefacts.LPIPS_BACKBONES) == set(BACKBONE_WEIGHTS)
    for net, checkpoint in artefacts.LPIPS_BACKBONES.items():
        assert checkpoint.url == backbone_url(net)  # what lpips loads through torchvision
        weights = getattr(torchvision.models, BACKBONE_WEIGHTS[net]).IMAGENET1K_V1
        assert float(checkpoint.size.removesuffix(" MB")) == pytest.approx(weights.meta["_file_size"], rel=0.01)


def test_the_docs_list_every_artefact_with_its_revision():
    page = (ROOT / "docs" / "artefacts.md").read_text()
    for model in artefacts.MODELS:
        assert model.id in page and model.revision in page
        assert all(sha256 in page for sha256 in model.published_sha256.values())
    assert artefacts.WIKIART.id in page and artefacts.WIKIART.revision in page
    assert all(checkpoint.file in page for checkpoint in artefacts.LPIPS_BACKBONES.values())
    assert "(docs/artefacts.md)" in (ROOT / "README.md").read_text()
