"""Fit the digits Gaussian mixture shipped as builder/select/data/digits_gmm.npz (run once; needs sklearn).

Data: scikit-learn's bundled 8×8 digits (1797 images, 64 pixels, values 0..16), scaled to [−1, 1] by
x/8 − 1. Model: ``GaussianMixture(n_components=10, covariance_type="full", reg_covar=1e-3,
random_state=0)``; reg_covar adds 1e-3 to each covariance's diagonal (pixel std ≥ 0.03), which keeps the
always-zero border pixels from making Σ_k singular. The file stores π_k, μ_k and the eigendecomposition
Σ_k = U_k diag(s_k) U_kᵀ in float64, so the problem is defined by the file bytes and not by a platform's
``eigh``.

    python scripts/fit_digits_gmm.py [--components 10] [--out builder/select/data/digits_gmm.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def fit(n_components: int = 10, reg_covar: float = 1e-3, seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.mixture import GaussianMixture as SkGMM

    x = load_digits().data.astype(np.float64) / 8.0 - 1.0
    gm = SkGMM(n_components=n_components, covariance_type="full", reg_covar=reg_covar, random_state=seed)
    gm.fit(x)
    print(f"fitted {n_components} components, converged={gm.converged_}, mean log-lik {gm.score(x):.3f}")
    return gm.weights_, gm.means_, gm.covariances_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--reg-covar", type=float, default=1e-3)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=root / "builder" / "quality" / "data" / "digits_gmm.npz")
    args = parser.parse_args()

    import sys

    sys.path.insert(0, str(root))
    from builder.select.mixtures import GaussianMixture

    weights, means, covs = fit(args.components, args.reg_covar)
    gmm = GaussianMixture.from_covariances(weights, means, covs, name="digits")
    gmm.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), digest {gmm.digest[:16]}")


if __name__ == "__main__":
    main()
