"""adv2.core.metrics on hand-made maps, where every number can be checked by hand."""

import math

import pytest
import torch

from adv2.core import metrics


def test_success_rate_and_confidence_helpers():
    assert metrics.success_rate(torch.tensor([True, False, True, True])) == 0.75
    assert math.isnan(metrics.success_rate(torch.tensor([], dtype=torch.bool)))
    logits = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    target = torch.tensor([1, 2])
    conf = metrics.target_confidence(logits, target)
    assert conf[0] == pytest.approx(math.exp(2) / (math.exp(2) + 2))
    assert conf[1] == pytest.approx(1 / (math.exp(3) + 2))


def test_mean_std_is_sample_std():
    mean, std = metrics.mean_std(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert metrics.mean_std(torch.tensor([7.0])) == (7.0, 0.0)
    assert all(math.isnan(v) for v in metrics.mean_std(torch.tensor([])))


def test_l1_l2_by_hand():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.zeros(2, 1, 2, 2)
    b[0, 0, 0, 0] = 1.0  # one cell differs by 1
    b[1] = 0.5  # every cell differs by 0.5
    assert metrics.l1_distance(a, b).tolist() == pytest.approx([0.25, 0.5])
    # sqrt(1) / sqrt(4) and sqrt(4 * 0.25) / sqrt(4)
    assert metrics.l2_distance(a, b).tolist() == pytest.approx([0.5, 0.5])
    c = torch.rand(3, 1, 5, 5)
    assert torch.allclose(metrics.l1_distance(c, c), torch.zeros(3))
    # (N, h, w) works as well as (N, 1, h, w)
    assert torch.allclose(metrics.l1_distance(c[:, 0], 1 - c[:, 0]), metrics.l1_distance(c, 1 - c))


def test_l2_normalisation_matches_definition():
    a, b = torch.rand(4, 1, 7, 7), torch.rand(4, 1, 7, 7)
    expected = torch.linalg.vector_norm((a - b).flatten(1), dim=1) / 7
    assert torch.allclose(metrics.l2_distance(a, b), expected)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        metrics.l1_distance(torch.rand(2, 1, 7, 7), torch.rand(2, 1, 14, 14))


def test_iou_identical_maps_is_one():
    m = torch.rand(5, 1, 14, 14)
    curve = metrics.iou_curve(m, m.clone())
    assert curve.shape == (5, 9)
    assert torch.all(curve == 1)


def test_iou_disjoint_topk_is_zero():
    a = torch.zeros(1, 1, 10, 10)
    b = torch.zeros(1, 1, 10, 10)
    a[0, 0, :2] = 1.0  # top 20 % of a: rows 0-1
    b[0, 0, -2:] = 1.0  # top 20 % of b: rows 8-9
    assert metrics.topk_iou(a, b, 0.2).item() == 0
    assert metrics.topk_iou(a, b, 0.1).item() == 0
    # at 50 % a keeps rows 0-1 + the first 3 zero rows (stable ties), b rows 8-9 + rows 0-2
    assert metrics.topk_iou(a, b, 0.5).item() == pytest.approx(30 / 70)


def test_topk_ties_break_by_stable_order():
    flat = torch.zeros(1, 10)
    mask = metrics.topk_mask(flat, 0.3)
    assert mask[0].tolist() == [True] * 3 + [False] * 7
    assert metrics.topk_mask(torch.arange(10.0).view(1, 10), 0.1)[0, 9]
    with pytest.raises(ValueError):
        metrics.topk_mask(flat, 0.0)


def test_iou_partial_overlap_by_hand():
    a = torch.tensor([[4.0, 3.0, 2.0, 1.0]])  # top-50 %: cells 0,1
    b = torch.tensor([[4.0, 1.0, 3.0, 2.0]])  # top-50 %: cells 0,2
    assert metrics.topk_iou(a, b, 0.5).item() == pytest.approx(1 / 3)
    assert metrics.topk_iou(a, b, 0.25).item() == 1.0


def test_summarize_restricts_distances_to_successes():
    benign = torch.zeros(4, 1, 2, 2)
    adv = torch.zeros(4, 1, 2, 2)
    adv[2:] = 1.0  # the two failures have maps far away
    success = torch.tensor([True, True, False, False])
    conf = torch.tensor([0.9, 0.7, 0.1, 0.2])
    s = metrics.summarize(success, conf, adv, benign)
    assert s["success_rate"] == 0.5
    assert s["confidence_mean"] == pytest.approx(0.8)
    assert s["confidence_std"] == pytest.approx(math.sqrt(0.02))
    assert s["l1_mean"] == 0 and s["l2_mean"] == 0 and s["iou_mean"] == 1
    assert s["n"] == 4 and s["n_measured"] == 2
    assert len(s["iou_curve"]) == 9
    everyone = metrics.summarize(success, conf, adv, benign, restrict_to_success=False)
    assert everyone["l1_mean"] == pytest.approx(0.5)
    assert everyone["confidence_mean"] == pytest.approx(0.8)  # confidence: successes only
    keys = {
        "success_rate",
        "confidence_mean",
        "confidence_std",
        "l1_mean",
        "l1_std",
        "l2_mean",
        "l2_std",
        "iou_mean",
        "iou_curve",
    }
    assert keys <= set(s)


def test_summarize_with_no_success_gives_nan():
    s = metrics.summarize(
        torch.tensor([False, False]), torch.tensor([0.1, 0.2]), torch.rand(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    )
    assert s["success_rate"] == 0
    assert math.isnan(s["l1_mean"]) and math.isnan(s["confidence_mean"])
    assert math.isnan(s["iou_mean"])


# ----------------------------------------------------------------------------- shared helpers
def test_one_l1_everywhere_and_differentiable():

    gen = torch.Generator().manual_seed(0)
    a = torch.rand(4, 1, 5, 5, generator=gen, requires_grad=True)
    b = torch.rand(4, 1, 5, 5, generator=gen)
    d = metrics.l1_distance(a, b)
    assert torch.allclose(d, (a - b).abs().mean(dim=(1, 2, 3)))
    d.sum().backward()  # AID trains through it
    assert torch.allclose(a.grad, torch.sign(a - b).detach() / 25)


def test_batched_helpers_match_unbatched():
    from adv2.core import models, tensors

    assert tensors.batch_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert tensors.batch_slices(3, None) == [slice(0, 3)] and tensors.batch_slices(0, 4) == []
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x = torch.rand(7, 3, 2, 2)
    whole = net(x).argmax(1)
    assert torch.equal(tensors.predicted_classes(net, x, batch_size=3), whole)
    y = whole.clone()
    y[:2] = (y[:2] + 1) % 4
    assert models.evaluate(net, x, y, batch_size=2) == 5 / 7
    assert torch.allclose(models.predict(net, x, batch_size=3), torch.softmax(net(x), 1))
    maps = tensors.map_batches(
        lambda xb, tb: xb.sum(1, keepdim=True) * tb.view(-1, 1, 1, 1), x, y, batch_size=2, to_cpu=True
    )
    assert torch.allclose(maps, x.sum(1, keepdim=True) * y.view(-1, 1, 1, 1))


def test_random_targets_are_uniform_wrong_classes():
    from adv2.core import tensors

    y = torch.arange(10).repeat(900)
    t = tensors.random_targets(y, 10, torch.Generator().manual_seed(1))
    assert tensors.random_targets is tensors.random_targets
    assert (t != y).all() and t.min() >= 0 and t.max() <= 9
    counts = torch.bincount((t - y) % 10, minlength=10)  # the shift is uniform on 1..9
    assert counts[0] == 0 and (counts[1:] - 1000).abs().max() < 150
