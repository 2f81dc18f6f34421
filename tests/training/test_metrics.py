
import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from spectralgpt_hf.training.metrics import (
    ChangeDetectionMetrics,
    ClassificationMetrics,
    MultiLabelMetrics,
    SegmentationMetrics,
    average_precision,
)


def brute_force_average_precision(scores, targets):
    """Sum over distinct thresholds of (recall gain) x precision, with every sample scoring >= threshold predicted."""
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        predicted = scores >= threshold
        precision = (targets & predicted).sum() / predicted.sum()
        recall = (targets & predicted).sum() / targets.sum()
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return total


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=40).astype(float)  # many ties
    targets = rng.random(40) < 0.3
    assert average_precision(scores, targets) == pytest.approx(brute_force_average_precision(scores, targets))


def test_average_precision_perfect_and_without_positives():
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == 1.0
    assert np.isnan(average_precision(np.array([0.9, 0.1]), np.array([0, 0])))


def test_multilabel_scores_whole_set_not_batch_mean():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(12, 4)), (rng.random((12, 4)) < 0.4).astype(np.float32)
    labels[0] = 1  # every class has a positive
    whole = MultiLabelMetrics()(EvalPrediction(logits, labels))
    metric = MultiLabelMetrics()
    for start in (0, 4):
        assert metric(EvalPrediction(logits[start : start + 4], labels[start : start + 4]), compute_result=False) is None
    batched = metric(EvalPrediction(logits[8:], labels[8:]), compute_result=True)
    assert batched == pytest.approx(whole)
    assert whole["micro_mAP"] == pytest.approx(brute_force_average_precision(logits.ravel(), labels.ravel() > 0))
    per_class = [brute_force_average_precision(logits[:, c], labels[:, c] > 0) for c in range(4)]
    assert whole["macro_mAP"] == pytest.approx(np.mean(per_class))


def test_batch_mode_accepts_torch_tensors_in_low_precision():
    """With batch_eval_metrics=True Trainer passes tensors as the model made them (e.g. bf16)."""
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=torch.bfloat16)
    metric = ClassificationMetrics()
    assert metric(EvalPrediction(logits, torch.tensor([0, 0])), compute_result=True) == {"accuracy": 0.5}


def test_classification_accuracy():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert ClassificationMetrics()(EvalPrediction(logits, np.array([0, 1, 1]))) == {"accuracy": pytest.approx(2 / 3)}


def test_segmentation_confusion_matrix_and_ignore_index():
    labels = np.array([[[0, 1], [2, 255]]])
    predictions = np.array([[[0, 1], [1, 0]]])
    scores = SegmentationMetrics(num_labels=3)(EvalPrediction(predictions, labels))
    assert scores["overall_accuracy"] == pytest.approx(2 / 3)
    # class 0: tp 1, union 1; class 1: tp 1, union 2; class 2: tp 0, union 1
    assert scores["iou_0"] == 1.0 and scores["iou_1"] == 0.5 and scores["iou_2"] == 0.0
    assert scores["mean_iou"] == pytest.approx(0.5)


def test_change_detection_precision_recall_f1_count_each_pixel_once():
    rng = np.random.default_rng(1)
    labels = (rng.random((3, 8, 8)) < 0.3).astype(np.int64)
    logits = rng.normal(size=(3, 2, 8, 8))
    scores = ChangeDetectionMetrics()(EvalPrediction(logits, labels))
    predicted = logits.argmax(1)
    tp = ((predicted == 1) & (labels == 1)).sum()
    precision, recall = tp / (predicted == 1).sum(), tp / (labels == 1).sum()
    assert scores["precision"] == pytest.approx(precision) and scores["recall"] == pytest.approx(recall)
    assert scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_macro_map_leaves_out_classes_without_positives():
    rng = np.random.default_rng(2)
    logits, labels = rng.normal(size=(10, 4)), (rng.random((10, 4)) < 0.5).astype(np.float32)
    labels[0, :3], labels[:, 3] = 1, 0  # class 3 has no positive in the set
    scores = MultiLabelMetrics()(EvalPrediction(logits, labels))
    per_class = [brute_force_average_precision(logits[:, c], labels[:, c] > 0) for c in range(3)]
    assert scores["macro_mAP"] == pytest.approx(np.mean(per_class))
    # Its scores still count as negatives for the micro average.
    assert scores["micro_mAP"] == pytest.approx(brute_force_average_precision(logits.ravel(), labels.ravel() > 0))
    assert np.isnan(MultiLabelMetrics()(EvalPrediction(logits, np.zeros_like(labels)))["macro_mAP"])


@pytest.mark.parametrize(
    "metric, make_predictions, make_labels",
    [
        (ClassificationMetrics, lambda rng: rng.normal(size=(11, 5)), lambda rng: rng.integers(0, 5, 11)),
        (lambda: SegmentationMetrics(num_labels=3), lambda rng: rng.normal(size=(11, 3, 4, 4)),
         lambda rng: np.where(rng.random((11, 4, 4)) < 0.1, 255, rng.integers(0, 3, (11, 4, 4)))),
        (ChangeDetectionMetrics, lambda rng: rng.normal(size=(11, 2, 4, 4)),
         lambda rng: rng.integers(0, 2, (11, 4, 4))),
    ],
    ids=["classification", "segmentation", "change_detection"],
)  # fmt: skip
def test_streamed_batches_score_as_the_whole_set(metric, make_predictions, make_labels):
    rng = np.random.default_rng(3)
    predictions, labels = make_predictions(rng), make_labels(rng)
    whole = metric()(EvalPrediction(predictions, labels))
    streamed = metric()
    for start in (0, 4):  # batches of 4, 4 and 3, as torch tensors as Trainer's batch_eval_metrics hands them
        part = slice(start, start + 4)
        batch = EvalPrediction(torch.from_numpy(predictions[part]), torch.from_numpy(labels[part]))
        assert streamed(batch, compute_result=False) is None
    assert streamed(EvalPrediction(predictions[8:], labels[8:]), compute_result=True) == pytest.approx(whole)
    # Scoring started afresh: the next set is scored on its own.
    first = EvalPrediction(predictions[:4], labels[:4])
    assert streamed(first) == pytest.approx(metric()(first))


def test_segmentation_mean_iou_leaves_out_a_class_absent_from_labels_and_predictions():
    labels = np.array([[[0, 1], [1, 3]]])
    predictions = np.array([[[0, 1], [3, 3]]])
    scores = SegmentationMetrics(num_labels=4)(EvalPrediction(predictions, labels))
    assert np.isnan(scores["iou_2"])
    # class 0: 1/1; class 1: 1/2; class 3: 1/2
    assert (scores["iou_0"], scores["iou_1"], scores["iou_3"]) == (1.0, 0.5, 0.5)
    assert scores["mean_iou"] == pytest.approx(2 / 3)


def test_change_detection_ignore_index_and_a_set_without_change():
    labels = np.array([[[0, 1], [255, 255]]])
    predictions = np.array([[[0, 1], [1, 0]]])  # the ignored pixels would add a false positive and a false negative
    scores = ChangeDetectionMetrics()(EvalPrediction(predictions, labels))
    assert (scores["precision"], scores["recall"], scores["f1"], scores["overall_accuracy"]) == (1.0, 1.0, 1.0, 1.0)
    padded = np.where(labels == 255, -100, labels)  # Trainer's padding label
    assert ChangeDetectionMetrics(ignore_index=-100)(EvalPrediction(predictions, padded)) == scores
    # No changed pixel in the labels or the predictions: zeros rather than NaN for the change scores, IoU over the
    # class that occurs.
    nothing = ChangeDetectionMetrics()(EvalPrediction(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), dtype=np.int64)))
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (0.0, 0.0, 0.0)
    assert np.isnan(nothing["iou_change"]) and nothing["mean_iou"] == nothing["iou_no_change"] == 1.0
