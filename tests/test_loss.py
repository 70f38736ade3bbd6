"""Loss functions and task weighting (spec 4.2, 4.3.3, 4.3.7)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from elixir_coder.training.loss import (
    GradNormWeighting,
    TaskWeighting,
    UncertaintyWeighting,
    VarianceWeighting,
    binary_cross_entropy,
    contrastive_multi_task,
    cross_entropy,
    default_weights,
    gradnorm_weights,
    info_nce,
    multi_label_bce,
    multi_task_loss,
)

torch.manual_seed(0)


def test_gradcheck_cross_entropy_with_smoothing_and_mask():
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, -100, 4, -100, 1])
    assert torch.autograd.gradcheck(lambda x: cross_entropy(x, labels, label_smoothing=0.1), (logits,))


def test_gradcheck_bce_and_multilabel_bce():
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 2, (4, 3)).double()
    weights = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: binary_cross_entropy(x, targets), (logits,))
    assert torch.autograd.gradcheck(lambda x: multi_label_bce(x, targets, weights), (logits,))


def test_gradcheck_info_nce():
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    n = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, p, n: info_nce(a, p, n, temperature=0.5, in_batch_negatives=True), (a, p, n))


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_extreme_logits_stay_finite(scale):
    logits = torch.full((2, 3), scale, requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    for loss in (binary_cross_entropy(logits, targets), multi_label_bce(logits, targets),
                 cross_entropy(logits * torch.tensor([1.0, -1.0, 0.5]), torch.tensor([1, 2]))):
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    tight = info_nce(torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 3, 4), temperature=1e-4)
    assert torch.isfinite(tight)


def test_cross_entropy_matches_torch():
    logits = torch.randn(10, 7)
    labels = torch.randint(0, 7, (10,))
    labels[3] = -100
    torch.testing.assert_close(cross_entropy(logits, labels), F.cross_entropy(logits, labels, ignore_index=-100))
    torch.testing.assert_close(
        cross_entropy(logits, labels, label_smoothing=0.2),
        F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=0.2),
    )
    assert cross_entropy(logits, torch.full((10,), -100)) == 0


def test_bce_matches_torch_and_multilabel_averages_over_all_labels():
    logits, targets = torch.randn(5, 4), torch.randint(0, 2, (5, 4)).float()
    torch.testing.assert_close(binary_cross_entropy(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    w = torch.tensor([1.0, 0.0, 2.0, 0.5])
    torch.testing.assert_close(multi_label_bce(logits, targets, w), (per * w).sum() / per.numel())


def test_multi_task_loss_is_the_weighted_sum():
    outputs = {
        "code_generation": (torch.randn(6, 9), torch.randint(0, 9, (6,))),
        "quality": (torch.randn(3, 4), torch.randint(0, 2, (3, 4)).float()),
    }
    weights = default_weights()
    total, per_task = multi_task_loss(outputs, weights)
    expected = 1.0 * F.cross_entropy(*outputs["code_generation"]) + 0.5 * F.binary_cross_entropy_with_logits(*outputs["quality"])
    torch.testing.assert_close(total, expected)
    assert set(per_task) == {"code_generation", "quality"}  # absent tasks add nothing
    with pytest.raises(KeyError, match="loss.weights.quality"):
        multi_task_loss(outputs, {"code_generation": 1.0})


def test_default_weights_follow_the_spec():
    assert default_weights() == {"code_generation": 1.0, "quality": 0.5, "security": 0.5,
                                 "test_generation": 0.8, "clarification": 0.3, "explanation": 0.3}


def test_contrastive_multi_task_and_static_weighting():
    assert contrastive_multi_task(torch.tensor(2.0), torch.tensor(1.0)) == pytest.approx(2.3)
    static = TaskWeighting(["code_generation", "quality"], {"quality": 0.25})
    total, w = static.combine({"code_generation": torch.tensor(2.0), "quality": torch.tensor(4.0)}, {"quality": 0.5})
    assert total == pytest.approx(2.0 + 0.25 * 0.5 * 4.0) and w["quality"] == pytest.approx(0.125)


def noisy_losses(step: int) -> dict[str, torch.Tensor]:
    """Task a: steady loss; task b: the same mean, but noisy."""
    g = torch.Generator().manual_seed(step)
    return {"code_generation": torch.tensor(1.0) + 0.01 * torch.randn((), generator=g),
            "quality": torch.tensor(1.0) + 0.8 * torch.randn((), generator=g)}


def test_uncertainty_weighting_moves_weight_away_from_the_noisy_task():
    weighting = UncertaintyWeighting(["code_generation", "quality"])
    opt = torch.optim.SGD(weighting.parameters(), lr=0.05)
    for step in range(400):
        opt.zero_grad()
        losses = {t: (v - 1.0) ** 2 * 10 + 0.1 if t == "quality" else v * 0 + 0.1 for t, v in noisy_losses(step).items()}
        total, _ = weighting.combine(losses)
        total.backward()
        opt.step()
    w = weighting.weights()
    assert w[1] < w[0]  # the noisy, poorly-fit task is down-weighted (Kendall's rule)


def test_variance_weighting_moves_weight_toward_the_noisy_task():
    weighting = VarianceWeighting(["code_generation", "quality"], window=20, min_steps=5)
    for step in range(30):
        weighting.observe(noisy_losses(step))
    w = weighting.weights()
    assert w[1] > w[0] and w.sum() == pytest.approx(2.0)


def test_gradnorm_balances_a_10x_gradient_scale_difference():
    """Two tasks share one layer; task b's gradients are 10x task a's. GradNorm evens the weighted norms."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(8, 8)
    head_a, head_b = torch.nn.Linear(8, 1), torch.nn.Linear(8, 1)
    head_b.load_state_dict(head_a.state_dict())  # same task shape; only the scale differs
    x = torch.randn(64, 8)
    weights = torch.ones(2)
    initial = None
    ratios = []
    for step in range(100):
        h = shared(x)
        la = head_a(h).pow(2).mean()
        lb = 10 * head_b(h).pow(2).mean()
        losses = torch.stack([la, lb])
        norms = torch.stack([torch.autograd.grad(l, shared.weight, retain_graph=True)[0].norm() for l in (la, lb)])
        if initial is None:
            initial = losses.detach()
            assert float(norms[1] / norms[0]) == pytest.approx(10.0)  # the setup: 10x apart
        weights = gradnorm_weights(weights, norms, losses, initial)  # defaults: alpha 1.5, lr 0.01
        assert (weights > 0).all() and weights.sum() == pytest.approx(2.0)
        ratios.append(float((weights[1] * norms[1]) / (weights[0] * norms[0])))
    assert ratios[0] > 5
    assert all(0.8 <= r <= 1.25 for r in ratios[70:])  # balanced within 70 steps, and stays so


def test_gradnorm_weighting_keeps_its_state_in_buffers():
    w = GradNormWeighting(["code_generation", "quality", "security"])
    state = w.state_dict()
    assert {"current", "initial_losses", "has_initial", "base"} <= set(state)
    assert float(state["current"].sum()) == pytest.approx(3.0)
