"""Metrics: pure functions on feature arrays (numpy or torch), kept apart from feature extractors.

Every function states in its docstring each convention that changes its number.
The Inception-V3 feature extractor lives in :mod:`genlab.metrics.inception` (imported lazily).
"""
from .classification import classification_accuracy
from .extractors import Extractor, get_extractor, real_features
from .feature_nets import FeatureNet, feature_net_for_shape, list_feature_nets, load_feature_net, metric_label
from .evaluate import evaluate_features
from .fid import fid
from .inception_score import inception_score
from .kid import kid, mmd2_unbiased
from .neighbours import density_coverage, knn_sq_radii, kth_nn_sq_radii, pairwise_sq_distances, prdc, \
    precision_recall
from .ppl import perceptual_path_length
from .reconstruction import mse, psnr, ssim
from .samples import fid_min_samples, sample_size_warnings
from .stats import FeatureStats
from .swd import sliced_wasserstein, swd

__all__ = [
    "FeatureStats", "fid", "kid", "mmd2_unbiased", "inception_score", "precision_recall", "density_coverage",
    "kth_nn_sq_radii", "knn_sq_radii", "prdc", "pairwise_sq_distances", "perceptual_path_length", "mse", "psnr", "ssim",
    "classification_accuracy", "evaluate_features", "Extractor", "get_extractor", "real_features", "FeatureNet",
    "load_feature_net", "list_feature_nets", "feature_net_for_shape", "metric_label", "sample_size_warnings",
    "fid_min_samples", "swd", "sliced_wasserstein",
]
