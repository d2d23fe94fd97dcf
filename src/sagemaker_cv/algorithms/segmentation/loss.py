"""The training loss of the segmentation networks."""

from __future__ import annotations

from mxnet import gluon


def recipe_denominator(samples: int, mini_batch_size: int) -> int:
    """What the gradient of a batch's summed per-sample losses is divided by: the batch, and the
    batch again, as in GluonCV's recipe (scripts/segmentation/train.py), which the built-in's
    learning_rate is tuned for. Its loss (MixSoftmaxCrossEntropyLoss) is MXNet's SoftmaxOutput with
    normalization='valid', whose gradient is already averaged over the labelled pixels of the whole
    batch, and it then calls trainer.step(batch_size), which divides once more (gluon-cv #591: "we
    usually adjust the learning rate accordingly"). Averaged only once, a batch of 8 moved the
    weights 8 times as far at the same learning_rate and learned less (bench/bench_learning.py)."""
    return samples * mini_batch_size


class MixedLoss(gluon.HybridBlock):
    """Per-sample softmax cross-entropy, averaged over the sample's labelled pixels (255 is
    ignored), of the main output plus `aux_weight` x that of the auxiliary one.

    Averaging per sample (the recipe averages over a device's pixels) keeps the gradient the same
    whatever the split of a batch across devices and hosts."""

    def __init__(self, aux_weight: float | None, **kwargs):
        super().__init__(**kwargs)
        self.aux_weight = aux_weight

    def _cross_entropy(self, F, scores, label, valid):
        nll = -F.pick(F.log_softmax(scores, axis=1), label * valid, axis=1)
        return F.sum(nll * valid, axis=(1, 2)) / F.maximum(F.sum(valid, axis=(1, 2)), 1)

    def hybrid_forward(self, F, label, main, aux=None):
        valid = label != 255
        loss = self._cross_entropy(F, main, label, valid)
        if aux is not None:
            loss = loss + self.aux_weight * self._cross_entropy(F, aux, label, valid)
        return loss
