"""Evaluation metrics over a whole evaluation set, for `Trainer(compute_metrics=...)`.

The original code averaged per-batch scores (and counted overlapping change-detection patches several times);
these accumulate over every sample first and score once. Each metric is a callable object that works both ways
Trainer calls `compute_metrics`: once with all predictions, or batch by batch with `batch_eval_metrics=True`
(`compute_result=True` on the last batch returns the scores and starts afresh).
"""

import numpy as np
import torch
from transformers import EvalPrediction


def to_numpy(values) -> np.ndarray:
    """Trainer hands numpy arrays, or torch tensors (on any device, any dtype) with `batch_eval_metrics=True`."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        return (values.float() if values.is_floating_point() else values).numpy()
    return np.asarray(values)


class StreamingMetric:
    def __call__(self, eval_pred: EvalPrediction, compute_result: bool = True) -> dict[str, float] | None:
        predictions = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        self.update(to_numpy(predictions), to_numpy(eval_pred.label_ids))
        if not compute_result:
            return None
        scores = self.compute()
        self.reset()
        return scores

    def update(self, predictions: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class ClassificationMetrics(StreamingMetric):
    """Top-1 accuracy of single-label classification; predictions are logits (N, num_labels)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.correct, self.total = 0, 0

    def update(self, predictions, labels):
        self.correct += int((predictions.argmax(-1) == labels).sum())
        self.total += labels.size

    def compute(self):
        return {"accuracy": self.correct / max(self.total, 1)}


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive, ties broken pessimistically
    (as scikit-learn and torchmetrics do: all samples of a tied score enter together). NaN without positives."""
    num_positives = targets.sum()
    if num_positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, targets = scores[order], targets[order]
    # the last index of each run of equal scores
    thresholds = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_positives = np.cumsum(targets)[thresholds]
    precision = true_positives / (thresholds + 1)
    recall_gain = np.diff(np.r_[0, true_positives]) / num_positives
    return float((precision * recall_gain).sum())


class MultiLabelMetrics(StreamingMetric):
    """Micro and macro mean average precision of multi-label classification; predictions are logits (N, C)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.scores, self.targets = [], []

    def update(self, predictions, labels):
        self.scores.append(predictions.astype(np.float64))
        self.targets.append(labels.astype(bool))

    def compute(self):
        scores, targets = np.concatenate(self.scores), np.concatenate(self.targets)
        per_class = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])]
        return {
            "micro_mAP": average_precision(scores.ravel(), targets.ravel()),
            "macro_mAP": float(np.nanmean(per_class)) if not np.all(np.isnan(per_class)) else float("nan"),
        }


class SegmentationMetrics(StreamingMetric):
    """
    Pixel metrics from one confusion matrix over the whole set: overall accuracy, mean IoU (over classes that occur
    in the labels or predictions) and per-class IoU. Predictions are class maps (N, H, W); pass
    `preprocess_logits_for_metrics=argmax_logits` to Trainer so that it keeps those instead of full logits.
    """

    def __init__(self, num_labels: int, ignore_index: int = 255, label_names: list[str] | None = None):
        self.num_labels = num_labels
        self.ignore_index = ignore_index
        self.label_names = label_names or [str(index) for index in range(num_labels)]
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_labels, self.num_labels), dtype=np.int64)

    def update(self, predictions, labels):
        if predictions.ndim == labels.ndim + 1:  # logits (N, C, H, W)
            predictions = predictions.argmax(1)
        valid = labels != self.ignore_index
        pairs = labels[valid].astype(np.int64) * self.num_labels + predictions[valid].astype(np.int64)
        self.confusion += np.bincount(pairs, minlength=self.num_labels**2).reshape(self.num_labels, self.num_labels)

    def compute(self):
        true_positives = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - true_positives
        iou = np.divide(true_positives, union, out=np.full_like(true_positives, np.nan), where=union > 0)
        scores = {
            "overall_accuracy": true_positives.sum() / max(self.confusion.sum(), 1),
            "mean_iou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        }
        scores.update({f"iou_{name}": float(value) for name, value in zip(self.label_names, iou)})
        return scores


class ChangeDetectionMetrics(SegmentationMetrics):
    """Precision, recall and F1 of the change class (1), each pixel counted once, plus the segmentation scores."""

    def __init__(self, ignore_index: int = 255):
        super().__init__(num_labels=2, ignore_index=ignore_index, label_names=["no_change", "change"])

    def compute(self):
        true_positive = self.confusion[1, 1]
        predicted, actual = self.confusion[:, 1].sum(), self.confusion[1].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {**super().compute(), "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def argmax_logits(logits, labels):
    """For `Trainer(preprocess_logits_for_metrics=...)`: keep class maps, not (N, C, H, W) logits."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    return logits.argmax(dim=1)
