"""Evaluate pretrained backbones: features (cached), weighted kNN, linear probes, protocol-stamped results, export.

    from passkit.evaluate import knn_eval
    result = knn_eval("runs/tiny-dino", "digits/train", "digits/val", k=20)
    result["value"], result["protocol"]

Needs the ``train`` extra (torch, torchvision, timm).
"""

from passkit.evaluate.checkpoint import CheckpointError, CheckpointInfo, load_backbone
from passkit.evaluate.datasets import DatasetError, LabeledDataset, open_dataset, write_digits_imagefolder
from passkit.evaluate.export import ExportError, export_backbone
from passkit.evaluate.features import EvalTransform
from passkit.evaluate.linear import LbfgsProbeConfig, MocoProbeConfig
from passkit.evaluate.results import read_results, write_result
from passkit.evaluate.run import FeatureOptions, knn_eval, knn_sweep, linear_eval

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "DatasetError",
    "EvalTransform",
    "ExportError",
    "FeatureOptions",
    "LabeledDataset",
    "LbfgsProbeConfig",
    "MocoProbeConfig",
    "export_backbone",
    "knn_eval",
    "knn_sweep",
    "linear_eval",
    "load_backbone",
    "open_dataset",
    "read_results",
    "write_digits_imagefolder",
    "write_result",
]
