"""Interpreters: oracles (Captum), the protocol (shapes, range, batching, seeds), differentiability
for the attack, the RTS cache, and one end-to-end RTS sanity check on a quickly trained classifier.

Fast on purpose: tiny random networks except the last test (about 45 s alone at 1 thread: 4 seeds of
a classifier and an RTS; the rest a few seconds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.classifier import freeze
from adv2.core.config import ParameterError, set_threads_from_env
from adv2.core.interpreters import (
    CAMInterpreter,
    GradInterpreter,
    MaskInterpreter,
    RTSInterpreter,
    RTSNet,
    build_interpreter,
    rts_loss,
    train_rts,
)
from adv2.core.interpreters.rts_training import sample_selector_classes
from adv2.core.models import build_small_cnn, small_resnet
from adv2.core.sanity import curve_auc, deletion_curve, preserve_destroy_per_image, shuffled_like
from adv2.core.smooth_relu import smooth_backward_copy
from adv2.core.stats import diff_ci
from adv2.trained import loading, recipes
from adv2.trained.cached import weights_fingerprint

set_threads_from_env()
NAMES = [f"c{i}" for i in range(10)]
ARCHS = ("resnet", "densenet")


def random_net(arch: str, seed: int = 0, in_channels: int = 1) -> nn.Module:
    """A randomly initialised classifier with non-trivial BatchNorm statistics, frozen."""
    torch.manual_seed(seed)
    net = (
        small_resnet(10, NAMES, in_channels=in_channels)
        if in_channels != 1
        else build_small_cnn(arch, 10, NAMES)
    )
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    return freeze(net)


@pytest.fixture(scope="module", params=ARCHS)
def net(request):
    return random_net(request.param)


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(5, 1, 28, 28, generator=gen), torch.tensor([0, 3, 5, 7, 9])


def _grad_like_ours(att: torch.Tensor, pool: int) -> torch.Tensor:
    m = F.avg_pool2d(att.abs().amax(1, keepdim=True), pool)
    flat = m.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).view_as(m)


# ----------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("in_channels", [1, 3])
def test_grad_equals_captum_saliency(in_channels):
    from captum.attr import Saliency

    model = random_net("resnet", seed=2, in_channels=in_channels)
    x = torch.rand(4, in_channels, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 2, 3, 4])
    ours = GradInterpreter(model)(x, t)
    # d log_softmax_t = -d CE: same map after abs and min-max
    sal = Saliency(lambda inp: F.log_softmax(model(inp), 1))
    theirs = _grad_like_ours(sal.attribute(x, target=t, abs=True), pool=2)
    assert ours.shape == (4, 1, 14, 14)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_cam_equals_captum_layer_gradcam(net, batch):
    from captum.attr import LayerGradCam

    x, t = batch
    ours = CAMInterpreter(net)(x, t)
    gc = LayerGradCam(net, net.stages[-1]).attribute(x, target=t, relu_attributions=False)
    flat = gc.detach().flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    theirs = ((flat - lo) / (hi - lo)).view_as(gc)
    assert ours.shape == (5, 1, 7, 7)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- differentiability
def test_smooth_copy_gives_grad_map_a_gradient(batch):
    model = random_net("resnet", seed=3)
    smooth = smooth_backward_copy(model)
    x, t = batch
    with torch.no_grad():
        assert torch.equal(model(x), smooth(x))  # exact forward
    w = torch.rand(5, 1, 14, 14, generator=torch.Generator().manual_seed(0))

    def map_gradient(m: nn.Module) -> torch.Tensor:
        xx = x.clone().requires_grad_(True)
        maps = GradInterpreter(m)(xx, t, create_graph=True)
        (g,) = torch.autograd.grad((maps * w).sum(), xx)
        return g

    g_smooth = map_gradient(smooth)
    assert torch.isfinite(g_smooth).all() and g_smooth.abs().sum() > 0
    # with true ReLUs the logit gradient is piecewise constant: its derivative is exactly zero
    # (our CE map keeps only the softmax's curvature, which the smooth copy enriches)
    for m, expect_zero in ((model, True), (smooth, False)):
        xx = x.clone().requires_grad_(True)
        logit = m(xx).gather(1, t.view(-1, 1)).sum()
        (g1,) = torch.autograd.grad(logit, xx, create_graph=True)
        (g2,) = torch.autograd.grad((g1.abs() * torch.rand_like(g1)).sum(), xx, allow_unused=True)
        zero = g2 is None or g2.abs().max() == 0
        assert zero == expect_zero


def test_cam_and_rts_are_differentiable(net, batch):
    x, t = batch
    for interp in (CAMInterpreter(net), RTSInterpreter(net, RTSNet(net))):
        xx = x.clone().requires_grad_(True)
        maps = interp(xx, t, create_graph=True)
        (g,) = torch.autograd.grad(maps.square().sum(), xx)
        assert g.abs().sum() > 0
        assert not interp(x, t).requires_grad  # detached by default
    rts = RTSInterpreter(net, RTSNet(net))
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(rts.encoder_logits(xx), t), xx)
    assert g.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(rts.encoder_logits(x), net(x))  # a copy of the classifier


def test_mask_objective_differentiable_in_mask_and_input(batch):
    model = random_net("resnet", seed=4)
    interp = MaskInterpreter(model)
    x, t = batch
    m = interp.init_mask(len(x)).requires_grad_(True)
    xx = x.clone().requires_grad_(True)
    loss = interp.mask_objective(m, xx, t, jitter=interp.sample_jitter(torch.Generator()))
    assert loss.shape == (5,)
    gm, gx = torch.autograd.grad(loss.sum(), (m, xx), create_graph=True)
    assert gm.abs().sum() > 0 and gx.abs().sum() > 0
    (gxx,) = torch.autograd.grad(gm.square().sum(), xx)  # what the unrolled attack needs
    assert gxx.abs().sum() > 0
    with pytest.raises(NotImplementedError):
        interp(x, t, create_graph=True)


# ----------------------------------------------------------------------------- protocol
def _interpreters(model: nn.Module) -> dict:
    return {
        "grad": GradInterpreter(model),
        "cam": CAMInterpreter(model),
        "rts": RTSInterpreter(model, RTSNet(model).eval()),
        "mask": MaskInterpreter(model, iterations=8, seed=5, l1=1e-6),
    }


def test_shapes_range_and_batching(net, batch):
    x, t = batch
    sizes = {"grad": 14, "cam": 7, "rts": 14, "mask": 14}
    for name, interp in _interpreters(net).items():
        maps = interp(x, t)
        assert interp.name == name and interp.map_size == sizes[name]
        assert maps.shape == (5, 1, sizes[name], sizes[name])
        assert maps.min() >= 0 and maps.max() <= 1 and torch.isfinite(maps).all()
        one_by_one = torch.cat([interp(x[i : i + 1], t[i : i + 1]) for i in range(len(x))])
        torch.testing.assert_close(maps, one_by_one, atol=1e-4, rtol=1e-4, msg=name)
        torch.testing.assert_close(interp(x, int(t[0])), interp(x, t[:1].expand(5)))


def test_mask_is_seeded(batch):
    model = random_net("resnet", seed=6)
    x, t = batch
    # no area/TV terms: only the class score (whose gradient depends on the jitter) moves m
    kw = dict(iterations=10, l1=0.0, tv=0.0)
    a = MaskInterpreter(model, seed=1, **kw)(x, t)
    b = MaskInterpreter(model, seed=1, **kw)(x, t)
    c = MaskInterpreter(model, seed=2, **kw)(x, t)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_build_interpreter(net):
    assert build_interpreter("grad", net, pool=4).map_size == 7
    assert build_interpreter("mask", net, iterations=3).iterations == 3
    with pytest.raises(ValueError, match="trained"):
        build_interpreter("rts", net)
    assert build_interpreter("rts", net, rts=RTSNet(net)).map_size == 14
    with pytest.raises(ParameterError):
        build_interpreter("gradcam", net)


def test_224_models_have_paper_map_sizes():
    """A 224-px classifier with 112/56/28/14/7 stages (EfficientNet-Lite0's layout)."""
    from adv2.core.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier

    chans = [4, 6, 8, 10, 12]
    stages = [
        nn.Sequential(nn.Conv2d(3 if i == 0 else chans[i - 1], c, 3, 2, 1), nn.ReLU())
        for i, c in enumerate(chans)
    ]
    model = freeze(
        ImageClassifier(stages, nn.Linear(12, 5), IMAGENET_MEAN, IMAGENET_STD, 224, NAMES[:5], "tiny224")
    )
    x, t = torch.rand(2, 3, 224, 224), torch.tensor([0, 4])
    rts = RTSNet(model, width=4)
    assert [u.block.shortcut.in_channels for u in rts.upsamplers] == [16 + 10, 8 + 8, 4 + 6]
    maps = {
        "grad": GradInterpreter(model)(x, t),
        "cam": CAMInterpreter(model)(x, t),
        "rts": RTSInterpreter(model, rts)(x, t),
        "mask": MaskInterpreter(model, iterations=1)(x, t),
    }
    assert {k: v.shape[-1] for k, v in maps.items()} == {"grad": 56, "cam": 7, "rts": 56, "mask": 28}


def test_rts_decoder_crops_to_odd_stage_sides():
    """EfficientNet-Lite2 at 260 px (stages 130, 65, 33, 17, 9; random weights): each x2 level is
    cropped to its skip's odd side, 9 -> 17 -> 33 -> 65, the map a quarter of the side."""
    from efficientnet_lite_pytorch import EfficientNet

    from adv2.core.pretrained import wrap_efficientnet_lite

    torch.manual_seed(0)
    lite2 = wrap_efficientnet_lite(
        EfficientNet.from_name("efficientnet-lite2"), ["c"] * 1000, "efficientnet-lite2"
    )
    rts = RTSNet(lite2, width=4, reduce=8, tie_selector=True, cam_prior=True)
    assert rts.map_size == 65 and rts.skip_index == [3, 2, 1]  # the stages of sides 17, 33, 65
    with torch.no_grad():
        assert RTSInterpreter(lite2, rts)(torch.rand(1, 3, 260, 260), 7).shape == (1, 1, 65, 65)
    with pytest.raises(ValueError, match="map_size 56"):
        RTSNet(lite2, map_size=56, width=4, reduce=8)


# ----------------------------------------------------------------------------- RTS pieces
def test_rts_loss_trains_only_the_decoder(batch):
    model = random_net("densenet", seed=7)
    rts = RTSNet(model).train()
    rts.selector.requires_grad_(False)
    x, y = batch
    loss, parts = rts_loss(model, rts, x, y, generator=torch.Generator().manual_seed(0))
    assert set(parts) >= {"destroyer", "area", "smooth", "preserver", "total", "mask"}
    loss.backward()
    assert all(p.grad is not None for p in rts.decoder_parameters())
    assert all(p.grad is None for p in rts.encoder.parameters())
    assert not rts.encoder.training  # the encoder copy stays in eval mode
    classes, real = sample_selector_classes(y, 10, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(classes == y, real)
    masks = torch.rand(3, 1, 4, 4)
    shuffled = shuffled_like(masks, torch.Generator().manual_seed(0))
    torch.testing.assert_close(shuffled.flatten(1).sort(1).values, masks.flatten(1).sort(1).values)


class _Data:
    name = "toy"

    def __init__(self, n: int = 64):
        gen = torch.Generator().manual_seed(0)
        self.x_train = torch.rand(n, 1, 28, 28, generator=gen)
        self.y_train = torch.randint(0, 10, (n,), generator=gen)


def rts_of_weights(model: nn.Module, fingerprint: str | None = None) -> recipes.RTSRecipe:
    """A 2 + 2 iteration RTS recipe for ``model``, keyed by its weights (or ``fingerprint``)."""
    known_by = fingerprint or weights_fingerprint(model)
    classifier = recipes.PretrainedClassifier(model.name, _Data.name, known_by, model.input_size)
    return recipes.RTSRecipe(classifier, phase1_iterations=2, phase2_iterations=2, batch_size=4, lr=1e-3)


def test_rts_is_cached_per_classifier(tmp_path):
    model, other = random_net("resnet", seed=8), random_net("resnet", seed=9)
    data = _Data()
    kw = dict(artifacts_dir=str(tmp_path), progress=False)
    net1, art1 = loading.load_rts(rts_of_weights(model), data, model, **kw)
    net2, art2 = loading.load_rts(rts_of_weights(model), data, model, **kw)
    assert not art1.from_cache and art2.from_cache and art1.path == art2.path
    for a, b in zip(net1.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    assert not any(k.startswith("encoder.") for k in art1.state)  # encoder = classifier copy
    _, art3 = loading.load_rts(rts_of_weights(other), data, other, **kw)  # other weights -> other key
    _, art4 = loading.load_rts(rts_of_weights(model, "abc"), data, model, **kw)
    assert len({art1.path, art3.path, art4.path}) == 3
    assert set(art1.metrics) >= {"phase1_loss", "phase2_total", "seconds"}


def test_deletion_curve_rewards_the_right_map():
    """A classifier that only looks at the top-left quadrant: the quadrant map beats random."""

    class Quadrant(nn.Module):
        def forward(self, x):
            s = x[:, :, :14, :14].mean(dim=(1, 2, 3))
            return torch.stack([10 * (s - 0.2), torch.zeros_like(s)], 1)

    x = torch.full((3, 1, 28, 28), 0.6)
    y = torch.zeros(3, dtype=torch.long)
    good = torch.zeros(3, 1, 7, 7)
    good[:, :, :3, :3] = 1
    model = Quadrant()
    auc_good = curve_auc(deletion_curve(model, x, y, good, baseline=0.0)).mean()
    auc_rand = curve_auc(deletion_curve(model, x, y, None, baseline=0.0)).mean()
    assert auc_good < auc_rand - 0.1


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def _rts_evidence_one_seed(data, seed: int, n: int = 128) -> dict[str, np.ndarray]:
    """One seed of the smoke RTS test: a briefly trained classifier and an RTS at the smoke
    budget, both from ``seed``, checked on test images ``seed*n .. seed*n+n-1``. Asserts the
    per-seed claims; returns per image the RTS-minus-random gaps (preserve-and-destroy, deletion
    AUC) of the trained RTS and of the same RTS before training (0 iterations)."""
    torch.manual_seed(seed)
    model = build_small_cnn("resnet", 10, data.class_names)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(60):  # 60 batches of 2000 images: test accuracy 0.4-0.8 by seed
        idx = torch.randint(0, 2000, (64,), generator=gen)
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    freeze(model)
    x, y = data.x_test[seed * n : (seed + 1) * n], data.y_test[seed * n : (seed + 1) * n]
    auc_random = np.asarray(curve_auc(deletion_curve(model, x, y, None)))
    gaps, maps = {}, None
    for name, iterations in (("trained", 40), ("untrained", 0)):
        rts, metrics = train_rts(
            model,
            data.x_train[:2000],
            data.y_train[:2000],
            phase1_iterations=iterations,
            phase2_iterations=iterations,
            phase1_batch_size=64,
            batch_size=16,
            phase1_lr=1e-2,
            lr=1e-2,
            seed=seed,
            progress=False,
        )
        maps = RTSInterpreter(model, rts)(x, y)
        per_image = preserve_destroy_per_image(model, x, y, maps)
        gaps[f"{name}_both"] = (per_image["both"] - per_image["random_both"]).numpy()
        gaps[f"{name}_auc"] = auc_random - np.asarray(curve_auc(deletion_curve(model, x, y, maps)))
        if name == "trained":
            assert metrics["phase1_final_accuracy"] > 0.6, f"seed {seed}: selector"  # it learned
            fake = RTSInterpreter(model, rts)(x, (y + 1) % 10)
            assert fake.mean() < maps.mean(), f"seed {seed}: absent classes get smaller masks"
    return gaps


def test_rts_smoke_budget_beats_random_masks():
    """RTS trained at the smoke budget on a briefly trained classifier finds class evidence:
    its masks preserve-and-destroy more often, and delete faster, than same-area random masks,
    and by more than the same RTS before training does.

    Decided by paired 95 % intervals pooled over 4 training seeds x 128 test images (each seed
    its own classifier, RTS and images): one seed was not enough, as the outcome depended on the
    seed (and another CPU acts like another seed): at 30 classifier steps and 20 RTS iterations
    seed 1 gave preserve-and-destroy gap 0 and seed 3 -0.010 [-0.027, 0.005]. Measured with this
    recipe at 1 thread (RTS - random, preserve-and-destroy / deletion AUC): seeds 0-5 each
    positive, lowest 0.058 [0.011, 0.109] / 0.023 [0.005, 0.042] (seed 0); pooled seeds 0-3
    0.104 [0.075, 0.133] / 0.054 [0.045, 0.063]; an untrained RTS pooled 0.019 [0.007, 0.033] /
    0.008 [0.001, 0.016], above 0 (its masks follow the image), hence the trained-minus-untrained
    claim: pooled 0.084 [0.054, 0.114] / 0.046 [0.036, 0.057], and over every 4 of seeds 0-5 the
    lowest lower end is 0.034 / 0.027 (the untrained RTS gives exactly 0 there). With 2 threads
    pooled 0.125 [0.095, 0.155] / 0.063 [0.054, 0.072], trained minus untrained 0.105 [0.072,
    0.138] / 0.053 [0.043, 0.063]. About 45 s at 1 thread."""
    from adv2.trained.data import DatasetUnavailable, load_fashion_mnist

    try:
        data = load_fashion_mnist(allow_download=False)
    except DatasetUnavailable:
        pytest.skip("Fashion-MNIST not installed")
    runs = [_rts_evidence_one_seed(data, seed) for seed in range(4)]
    pooled = {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}

    def gap(a: np.ndarray, b: np.ndarray | None = None):
        return diff_ci(a, np.zeros_like(a) if b is None else b, paired=True)

    both = gap(pooled["trained_both"])
    assert both.low > 0, f"preserve-and-destroy, RTS minus random masks: {both}"
    faster = gap(pooled["trained_auc"])
    assert faster.low > 0, f"deletion AUC, random order minus RTS: {faster}"
    learned = gap(pooled["trained_both"], pooled["untrained_both"])
    assert learned.low > 0, f"preserve-and-destroy gap, trained minus untrained RTS: {learned}"
    learned = gap(pooled["trained_auc"], pooled["untrained_auc"])
    assert learned.low > 0, f"deletion AUC gap, trained minus untrained RTS: {learned}"
