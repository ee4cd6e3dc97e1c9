"""Evaluation: FID / KID on InceptionV3 features, segmentation mIoU and accuracy."""

from spade_tf.evaluation.fid_inception import build_fid_inception
from spade_tf.evaluation.inception import InceptionFeatures, build_inception
from spade_tf.evaluation.metrics import (
    ConfusionMatrix,
    feature_statistics,
    fid,
    frechet_distance,
    kid,
    mean_iou,
    pixel_accuracy,
    polynomial_mmd2,
)
from spade_tf.evaluation.periodic import PeriodicEvaluator
from spade_tf.evaluation.protocol import PAPER_RESULTS, SegmentationProtocol, segmentation_protocol
from spade_tf.evaluation.run import EvalOptions, evaluate
from spade_tf.evaluation.segmenter import Segmenter

__all__ = [
    "ConfusionMatrix", "EvalOptions", "InceptionFeatures", "PAPER_RESULTS", "PeriodicEvaluator",
    "SegmentationProtocol", "Segmenter",
    "build_fid_inception", "build_inception", "evaluate", "feature_statistics", "fid", "frechet_distance", "kid",
    "mean_iou", "pixel_accuracy", "polynomial_mmd2", "segmentation_protocol",
]
