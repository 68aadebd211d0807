"""How far the generations at one checkpoint are from the originals as distributions, in a feature
space (`analysis.features`): KID and FID from torch-fidelity, precision, recall, density and
coverage from `prdc`.

- KID (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel, averaged over
  KID_SUBSETS subsets of `subset_size(n)` images (half, at most KID_SUBSET_SIZE) drawn from each set
  (seeded), with its SD over the subsets. Unbiased at any n: the measure to read at the study's n = 100.
- FID (Heusel et al. 2017): the Fréchet distance of Gaussians fitted to the two sets. Biased upward
  at small n (the covariance of 2048 features from 100 images is far from the truth), so only for
  comparison with other work; it does not compare across n.
- precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020), from
  the k-nearest-neighbour balls of PRDC_K = 5 neighbours (Naeem et al.'s choice).
At least MIN_IMAGES images with a generation at the checkpoint, else nothing is computed.

FID and the k-NN measures depend on the features only through distances, means and covariances,
which an orthonormal basis of the span of the two sets' rows keeps exactly: with fewer images than
features (100 images, 2048 features) they are computed in that span, the same values in a fraction
of the time (FID's eigenvalues of a 2048 × 2048 product take 20 s on two CPU cores).
"""

import contextlib
import io

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 50
PRDC_K = 5
MIN_IMAGES = 10  # at least PRDC_K + 1 neighbours, and subsets of more than a handful for KID
MEASURES = ("kid", "kid-sd", "fid", "precision", "recall", "density", "coverage")


def subset_size(n: int) -> int:
    """KID's subset size for sets of `n` images: half of them, at most KID_SUBSET_SIZE, so that
    subsets differ and their SD says something."""
    return min(KID_SUBSET_SIZE, n // 2)


def too_few(n: int) -> str | None:
    """Why a set of `n` images gets no distribution measures, or None."""
    if n < MIN_IMAGES:
        return (f"{n} image(s) with a generation there; KID, FID, precision, recall, density and coverage need at "
                f"least {MIN_IMAGES} (k = {PRDC_K} neighbours, KID subsets of up to {KID_SUBSET_SIZE})")
    return None


def set_measures(originals: np.ndarray, generations: np.ndarray, seed: int = 0) -> dict[str, float]:
    """MEASURES of `generations` against `originals` (feature rows, float32 (n, dim))."""
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    real, fake = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in (originals, generations))
    kid = kid_features_to_metric(real, fake, kid_subsets=KID_SUBSETS,
                                 kid_subset_size=subset_size(min(len(real), len(fake))), rng_seed=seed, verbose=False)
    small_real, small_fake = in_span(originals, generations)
    fid = fid_statistics_to_metric(*(fid_features_to_statistics(torch.from_numpy(x)) for x in (small_real, small_fake)),
                                   verbose=False)
    return {"kid": kid["kernel_inception_distance_mean"], "kid-sd": kid["kernel_inception_distance_std"],
            "fid": fid["frechet_inception_distance"], **prdc(small_real, small_fake)}


def in_span(originals: np.ndarray, generations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets in float64 coordinates of an orthonormal basis of the span of their rows (as they are
    when that span is not smaller than the features): distances, means and covariances unchanged."""
    x, y = originals.astype(np.float64), generations.astype(np.float64)
    if len(x) + len(y) >= x.shape[1]:
        return x, y
    basis, _ = np.linalg.qr(np.concatenate([x, y]).T)  # (features, rows)
    return x @ basis, y @ basis


def prdc(originals: np.ndarray, generations: np.ndarray) -> dict[str, float]:
    """Precision, recall, density and coverage with PRDC_K neighbours (the `prdc` package)."""
    from joblib import parallel_config
    from prdc import compute_prdc

    # it prints the set sizes; and it asks scikit-learn for 8 threads per distance matrix, which cost
    # more than they save on these small matrices (and warn that the configuration is not passed on)
    with contextlib.redirect_stdout(io.StringIO()), parallel_config(backend="sequential"):
        values = compute_prdc(real_features=originals, fake_features=generations, nearest_k=PRDC_K)
    return {name: float(value) for name, value in values.items()}


def mmd2_left_out(originals: np.ndarray, generations: np.ndarray, kept: np.ndarray) -> tuple[float, np.ndarray]:
    """The unbiased MMD² with KID's kernel of the full paired sets (rows: the same images), and of
    the images of each row of `kept` (boolean, groups × images): the jackknife's inputs."""
    from torch_fidelity.metric_kid import kernel_poly, mmd2

    kernel = dict(kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    x, y = originals.astype(np.float64), generations.astype(np.float64)
    kxx, kxy, kyy = kernel_poly(x, x, **kernel), kernel_poly(x, y, **kernel), kernel_poly(y, y, **kernel)
    parts = np.array([mmd2(*(k[np.ix_(keep, keep)] for k in (kxx, kxy, kyy))) for keep in kept])
    return float(mmd2(kxx, kxy, kyy)), parts


def prdc_left_out(originals: np.ndarray, generations: np.ndarray, kept: np.ndarray) -> tuple[dict, list[dict]]:
    """`prdc` of the full paired sets, and of the images of each row of `kept`."""
    x, y = in_span(originals, generations)
    return prdc(x, y), [prdc(x[keep], y[keep]) for keep in kept]
