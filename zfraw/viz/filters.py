"""First-layer filters and the diagnostics of the paper's Sec. 4.1 (Fig. 6): dead filters,
filters dominated by very low or very high frequencies, and aliasing in layer 2 — numbers that
let 'alexnet' and 'zf' be compared.

Definitions (ours; the paper shows these only as pictures):
- dead filter: a conv1 map that is positive at fewer than ``threshold`` of all (image, position)
  pairs of a dataset (its ReLU output is almost always 0).
- band shares: each filter's power spectrum (2-D DFT zero-padded to ``n_fft``, summed over input
  channels) split by radial frequency r in units of Nyquist (r = 1 at the edge of the axes):
  low r < 0.25 (DC included), mid 0.25 <= r < 0.75, high r >= 0.75. A filter is 'low'
  (resp. 'high') dominated when that band holds more than ``dominance`` of its energy.
- aliasing, two views of layer-2 activations:
  * nyquist_share: energy of each map's spatial spectrum (map mean removed) at r >= 0.75,
    averaged; large when the maps carry checkerboard-like, sub-sampled patterns.
  * shift_sensitivity: mean over images of ||g(x) - g(shift(x))|| / ||g(x)|| where g is the
    layer's activation averaged over positions (one number per map) and shift moves the
    image by 1..s-1 pixels (s = the layer's total stride, below which an alias-free network
    would barely notice a shift; Azulay & Weiss 2019, Zhang 2019).
"""
from __future__ import annotations

import numpy as np

from .images import grid, minmax_uint8, scale_to_uint8, upscale
from .invariance import translate

BANDS = {"low": (0.0, 0.25), "mid": (0.25, 0.75), "high": (0.75, np.inf)}


def filter_grid(weights: np.ndarray, ncols: int = 12, zoom: int | None = None,
                min_side: int = 36, shared: bool = False) -> np.ndarray:
    """conv1 filters (F, C, k, k), C in {1, 3}, each stretched to its own range (``shared``:
    all on one symmetric scale, zero = grey, so filters that dominate stand out, as in the
    paper's Fig. 6 (a)) -> one (H, W, 3) uint8 grid image; each filter drawn at least
    ``min_side`` pixels wide (an integer zoom of its k pixels) unless ``zoom`` is given."""
    weights = np.asarray(weights)
    if weights.ndim != 4 or weights.shape[1] not in (1, 3):
        raise ValueError(f"expected first-layer weights (F, 1|3, k, k), got {weights.shape}")
    z = zoom or max(1, -(-min_side // weights.shape[-1]))
    m = float(np.abs(weights).max()) or 1.0
    show = (lambda w: scale_to_uint8(w, -m, m)) if shared else minmax_uint8
    return grid([upscale(show(w), z) for w in weights], ncols,
                pad=zoom if zoom else max(2, z // 3))


def radial_frequency(n: int) -> np.ndarray:
    """(n, n) radial frequency of a 2-D DFT grid in units of Nyquist (1 at the axes' edge)."""
    f = np.fft.fftfreq(n) * 2.0
    return np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def band_shares(weights: np.ndarray, n_fft: int = 32) -> dict:
    """Share of each filter's spectral energy per band. weights (F, C, k, k) ->
    {'low'|'mid'|'high': (F,)} summing to 1 per filter."""
    weights = np.asarray(weights, dtype=np.float64)
    k = weights.shape[-1]
    power = (np.abs(np.fft.fft2(weights, s=(max(n_fft, k), max(n_fft, k)))) ** 2).sum(axis=1)
    total = power.sum(axis=(1, 2))
    total = np.where(total > 0, total, 1.0)
    r = radial_frequency(power.shape[-1])
    return {name: power[:, (r >= lo) & (r < hi)].sum(axis=1) / total
            for name, (lo, hi) in BANDS.items()}


def dominated(shares: dict, dominance: float = 0.8) -> dict:
    """Indices of filters whose 'low' / 'high' band holds more than ``dominance`` of the energy."""
    return {name: np.flatnonzero(shares[name] > dominance) for name in ("low", "high")}


class PositiveFraction:
    """Streams, per map, the fraction of (image, position) pairs where an activation is > 0."""

    def __init__(self):
        self.count = None
        self.total = 0

    def update(self, act: np.ndarray):
        """act: (N, C, H, W) host activations of one batch."""
        pos = (act > 0).sum(axis=(0, 2, 3))
        self.count = pos if self.count is None else self.count + pos
        self.total += act.shape[0] * act.shape[2] * act.shape[3]

    def result(self) -> np.ndarray:
        """(C,) fractions in [0, 1]."""
        if self.count is None:
            raise ValueError("PositiveFraction: no batch was given")
        return self.count / self.total


def dead_filters(positive_fraction: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Indices of maps positive at fewer than ``threshold`` of the positions seen."""
    return np.flatnonzero(np.asarray(positive_fraction) < threshold)


def nyquist_share(act: np.ndarray, cutoff: float = 0.75) -> float:
    """Mean over (image, map) of the share of a map's spectral energy at radial frequency
    >= cutoff (units of Nyquist), the map's mean removed. act: (N, C, h, w), h, w >= 2;
    maps with no energy are left out."""
    act = np.asarray(act, dtype=np.float64)
    h, w = act.shape[2:]
    a = act - act.mean(axis=(2, 3), keepdims=True)
    power = np.abs(np.fft.fft2(a)) ** 2
    fy, fx = np.fft.fftfreq(h) * 2.0, np.fft.fftfreq(w) * 2.0
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    total = power.sum(axis=(2, 3))
    high = power[:, :, r >= cutoff].sum(axis=2)
    ok = total > 0
    return float((high[ok] / total[ok]).mean()) if ok.any() else float("nan")


def shift_sensitivity(features, images: np.ndarray, layer: str, shifts) -> np.ndarray:
    """Relative change of the position-averaged activation of ``layer`` when the images move
    by s pixels diagonally, for s in ``shifts``. features(x) -> (probs, {layer: (n, C, h, w)});
    images: (N, C, H, W) net inputs. -> (len(shifts),) mean over images."""
    def pooled(x):
        return features(x)[1][layer].mean(axis=(2, 3))

    g0 = pooled(images)
    norm = np.maximum(np.linalg.norm(g0, axis=1), 1e-12)
    out = []
    for s in shifts:
        g = pooled(np.stack([translate(img, s, s) for img in images]))
        out.append(float((np.linalg.norm(g - g0, axis=1) / norm).mean()))
    return np.asarray(out)


def diagnostics(net, source, limit: int = 256, batch_size: int = 64, dead_threshold: float = 0.01,
                dominance: float = 0.8, shift_images: int = 32,
                layers=("conv1", "relu1", "conv2")) -> dict:
    """The Sec. 4.1 numbers for one net: conv1 band shares, dominated filters and structure
    (:func:`spectral_concentration`, per filter and its mean), dead conv1
    maps over the first ``limit`` images of source, and layer-2 aliasing (nyquist_share of
    conv2 over the same images, shift_sensitivity on ``shift_images`` of them for shifts below
    conv2's stride). ``layers``: the names of the first conv, its ReLU and the second conv (an
    imported net's may differ). Returns a dict of plain numbers and (F,) arrays."""
    from ..backend import to_device, to_host
    from .forward import probs_and_features

    conv1, relu1, conv2 = layers
    w = to_host(net.layer(conv1).params["W"])
    shares = band_shares(w)
    dom = dominated(shares, dominance)
    pos = PositiveFraction()
    nyq, seen = 0.0, 0
    net.eval()
    for _, x in source.batches(batch_size, limit, desc="first-layer diagnostics"):
        _, acts = net.forward(to_device(x, net.device), until=conv2, capture=(relu1, conv2))
        pos.update(to_host(acts[relu1]))
        nyq += nyquist_share(to_host(acts[conv2])) * len(x)
        seen += len(x)
    frac = pos.result()
    jump = net.receptive_field(conv2)[1]
    shifts = list(range(1, min(jump, 8)))
    sens = shift_sensitivity(probs_and_features(net, [conv2], batch_size, probs=False),
                             source.inputs(np.arange(min(shift_images, len(source)))), conv2,
                             shifts)
    structure = spectral_concentration(w)
    return {"filters": len(w), "band_shares": shares, "positive_fraction": frac,
            "structure": structure, "mean_structure": float(structure.mean()),
            "dead": dead_filters(frac, dead_threshold), "low_dominated": dom["low"],
            "high_dominated": dom["high"], "mean_mid_share": float(shares["mid"].mean()),
            "conv2_nyquist_share": nyq / max(seen, 1), "conv2_jump": jump,
            "shifts": shifts, "shift_sensitivity": sens}


def spectral_concentration(weights: np.ndarray, n_fft: int = 16, top: float = 0.1) -> np.ndarray:
    """How structured each filter is: the share of its spectral energy in its strongest ``top``
    fraction of frequencies. weights (F, C, k, k) -> (F,) in (0, 1].

    Each channel's mean is removed (a flat colour carries no pattern), the 2-D DFT is taken
    zero-padded to ``n_fft`` x ``n_fft`` and its power summed over channels. White noise
    spreads its energy evenly (about 0.22 at any filter size); oriented edges, Gabor-like
    patterns and colour blobs concentrate it in a few frequencies (about 0.46-0.71). The
    measure that says whether conv1 learned anything (docs/reproduction.md)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"expected filters (F, C, k, k), got shape {w.shape}")
    n = max(n_fft, w.shape[-1], w.shape[-2])
    w = w - w.mean(axis=(2, 3), keepdims=True)
    power = (np.abs(np.fft.fft2(w, s=(n, n))) ** 2).sum(axis=1).reshape(len(w), -1)
    strongest = np.sort(power, axis=1)[:, ::-1][:, :max(1, round(top * n * n))]
    total = power.sum(axis=1)
    return np.where(total > 0, strongest.sum(axis=1) / np.where(total > 0, total, 1.0), 0.0)
