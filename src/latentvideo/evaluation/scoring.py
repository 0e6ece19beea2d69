"""Scoring a set of generated digit clips against the truth (`Scorer`); colour clips: colour.ShapesScorer."""

from __future__ import annotations

import numpy as np

from ..data import moving_mnist
from . import metrics
from .classifier import features as classifier_features
from .classifier import predict_digits


class Scorer:
    """Computes every metric of a clip set [T, N, H, W] uint8 against the truth."""

    def __init__(self, truth, labels, classifier, keyframes, seed=0):
        self.truth, self.classifier, self.seed = truth, classifier, seed
        T, N = truth.shape[:2]
        self.others = np.array([t for t in range(T) if t not in set(keyframes)])
        if labels is None:  # the classifier's digit set on the keyframes, by majority
            votes = predict_digits(classifier, truth[list(keyframes)].reshape(-1, 1, *truth.shape[2:]))
            self.sets = votes.reshape(len(keyframes), N, 10).mean(0) > 0.5
        else:
            self.sets = metrics.label_sets(labels)
        ref = moving_mnist(max(N, 50), T, 2, truth.shape[-1], split="test", seed=seed + 10_000).video
        self.ref_stats = metrics.feature_stats(classifier_features(classifier, ref.reshape(-1, 1, *ref.shape[2:])))

    def __call__(self, clips: np.ndarray, n: int | None = None) -> tuple[dict, dict, dict]:
        n = n or clips.shape[1]
        gen, true = clips[self.others, :n], self.truth[self.others, :n]  # [T', n, H, W]
        per = {
            "mse_pixel": metrics.mse_per_pixel(gen, true),
            "mse_frame": metrics.mse_per_frame(gen, true),
            "psnr": metrics.psnr(gen, true),
            "ssim": metrics.ssim(gen, true),
            "motion": metrics.motion_error(gen, true),
            "ink": metrics.ink_ratio(gen, true),
        }
        pred = predict_digits(self.classifier, gen.reshape(-1, 1, *gen.shape[2:])).reshape(*gen.shape[:2], 10)
        per["identity"] = (pred == self.sets[None, :n]).all(-1).astype(np.float64)
        values, curves, clipwise = summarise(per, self.others, clips.shape[0], self.seed)
        values["flicker"] = list(metrics.bootstrap_ci(metrics.flicker(clips[:, :n]), seed=self.seed))
        feats = classifier_features(self.classifier, gen.reshape(-1, 1, *gen.shape[2:]))
        values["frechet"] = [metrics.frechet_from_stats(*metrics.feature_stats(feats), *self.ref_stats)] * 3
        return values, curves, clipwise


def summarise(per: dict, others, num_frames: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """Per-frame metrics {name: [T', n]} over the non-keyframes `others` -> each one's mean [low, high] (95 %
    bootstrap over the n sequences), its curve over all num_frames frames (nan at keyframes), and its mean per
    sequence (the list over n: which clips make a row's tail)."""
    clipwise = {k: np.nanmean(v, 0) for k, v in per.items()}  # {name: [n]}
    values = {k: list(metrics.bootstrap_ci(v, seed=seed)) for k, v in clipwise.items()}
    curves = {}
    for k, v in per.items():
        curve = np.full(num_frames, np.nan)
        curve[others] = np.nanmean(v, 1)
        curves[k] = curve.tolist()
    return values, curves, {k: [float(f"{x:.5g}") for x in v] for k, v in clipwise.items()}
