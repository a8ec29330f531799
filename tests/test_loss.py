"""Tests of the InfoNCE criterion (`core.loss`) against spec §3 and §1.7."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_cebra.core import models
from napari_cebra.core.loss import (
    InfoNCE,
    dot_similarity,
    euclidean_similarity,
    infonce,
    infonce_from_similarities,
)


def embeddings(batch=16, negatives=12, dim=4, seed=0, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    ref = scale * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    pos = scale * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    neg = scale * torch.randn(negatives, dim, generator=generator, dtype=torch.float64)
    return ref, pos, neg


def brute_force(ref, pos, neg, similarity, temperature):
    """The loss written as plain loops over Python floats."""
    rows_ref, rows_pos, rows_neg = ref.tolist(), pos.tolist(), neg.tolist()
    align = -sum(
        similarity(r, p) / temperature for r, p in zip(rows_ref, rows_pos, strict=True)
    ) / len(rows_ref)
    uniform = sum(
        math.log(sum(math.exp(similarity(r, n) / temperature) for n in rows_neg)) for r in rows_ref
    ) / len(rows_ref)
    return align + uniform, align, uniform


def dot(x, y):
    return sum(a * b for a, b in zip(x, y, strict=True))


def negative_squared_distance(x, y):
    return -sum((a - b) ** 2 for a, b in zip(x, y, strict=True))


LOOP_SIMILARITY = {"cosine": dot, "euclidean": negative_squared_distance}


# ----------------------------------------------------------------------------------- Correctness


def test_similarities_equal_loops():
    ref, pos, neg = embeddings()
    pos_dot, neg_dot = dot_similarity(ref, pos, neg)
    pos_l2, neg_l2 = euclidean_similarity(ref, pos, neg)
    assert neg_dot.shape == neg_l2.shape == (16, 12)
    for i in range(16):
        assert pos_dot[i].item() == pytest.approx(dot(ref[i].tolist(), pos[i].tolist()))
        assert pos_l2[i].item() == pytest.approx(
            negative_squared_distance(ref[i].tolist(), pos[i].tolist())
        )
        for j in range(12):
            assert neg_dot[i, j].item() == pytest.approx(dot(ref[i].tolist(), neg[j].tolist()))
            assert neg_l2[i, j].item() == pytest.approx(
                negative_squared_distance(ref[i].tolist(), neg[j].tolist())
            )


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_loss_equals_brute_force_loops(distance, temperature):
    ref, pos, neg = embeddings()
    total, pos_term, neg_term = InfoNCE(distance, temperature)(ref, pos, neg)
    expected = brute_force(ref, pos, neg, LOOP_SIMILARITY[distance], temperature)
    for value, reference in zip((total, pos_term, neg_term), expected, strict=True):
        assert value.dim() == 0
        assert value.item() == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_total_is_pos_plus_neg(distance):
    ref, pos, neg = embeddings(dim=8, seed=2)
    total, pos_term, neg_term = InfoNCE(distance, 0.5)(ref.float(), pos.float(), neg.float())
    torch.testing.assert_close(total, pos_term + neg_term)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_stabilised_equals_unstabilised_formula(distance):
    ref, pos, neg = (t.float() for t in embeddings(seed=3))
    similarity = dot_similarity if distance == "cosine" else euclidean_similarity
    pos_sim, neg_sim = similarity(ref, pos, neg)
    naive_pos = -(pos_sim / 0.7).mean()
    naive_neg = torch.log(torch.exp(neg_sim / 0.7).sum(dim=1)).mean()
    total, pos_term, neg_term = InfoNCE(distance, 0.7)(ref, pos, neg)
    torch.testing.assert_close(pos_term, naive_pos, rtol=1e-4, atol=0)
    torch.testing.assert_close(neg_term, naive_neg, rtol=1e-4, atol=0)
    torch.testing.assert_close(total, naive_pos + naive_neg, rtol=1e-4, atol=0)


def test_stabilisation_avoids_overflow():
    ref, pos, neg = (t.float() for t in embeddings(scale=30.0))
    pos_sim, neg_sim = dot_similarity(ref, pos, neg)
    assert torch.isinf(torch.exp(neg_sim / 0.01)).any()
    total, pos_term, neg_term = InfoNCE("cosine", 0.01)(ref, pos, neg)
    assert torch.isfinite(torch.stack([total, pos_term, neg_term])).all()
    expected = torch.logsumexp(neg_sim.double() / 0.01, dim=1).mean()
    assert neg_term.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_gradients_separate_pos_and_neg_terms(distance):
    ref, pos, neg = (t.float().requires_grad_(True) for t in embeddings(seed=4))
    _, pos_term, neg_term = InfoNCE(distance, 0.5)(ref, pos, neg)
    grad_pos_wrt_neg, grad_pos_wrt_pos = torch.autograd.grad(
        pos_term, (neg, pos), retain_graph=True, allow_unused=True
    )
    assert grad_pos_wrt_neg is None or torch.count_nonzero(grad_pos_wrt_neg) == 0
    assert torch.count_nonzero(grad_pos_wrt_pos) > 0
    grad_neg_wrt_pos, grad_neg_wrt_neg = torch.autograd.grad(
        neg_term, (pos, neg), allow_unused=True
    )
    assert grad_neg_wrt_pos is None or torch.count_nonzero(grad_neg_wrt_pos) == 0
    assert torch.count_nonzero(grad_neg_wrt_neg) > 0


def test_gradient_of_total_equals_unstabilised_gradient():
    ref, pos, neg = (t.float().requires_grad_(True) for t in embeddings(seed=5))
    total, _, _ = InfoNCE("cosine", 0.5)(ref, pos, neg)
    ours = torch.autograd.grad(total, (ref, pos, neg))
    pos_sim, neg_sim = dot_similarity(ref, pos, neg)
    naive = -(pos_sim / 0.5).mean() + torch.log(torch.exp(neg_sim / 0.5).sum(dim=1)).mean()
    expected = torch.autograd.grad(naive, (ref, pos, neg))
    for grad, reference in zip(ours, expected, strict=True):
        torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-6)


def test_equal_similarities_give_log_of_negative_count():
    ref = torch.ones(8, 3) / math.sqrt(3)
    total, pos_term, neg_term = InfoNCE()(ref, ref, torch.ones(20, 3) / math.sqrt(3))
    assert total.item() == pytest.approx(math.log(20), rel=1e-6)
    assert pos_term.item() == pytest.approx(-1.0, rel=1e-6)


def test_positive_equal_to_reference_lowers_the_loss():
    ref, pos, neg = (torch.nn.functional.normalize(t.float(), dim=1) for t in embeddings(seed=6))
    criterion = InfoNCE("cosine", 0.5)
    assert criterion(ref, ref, neg)[0] < criterion(ref, pos, neg)[0]


def test_temperature_changes_the_loss():
    ref, pos, neg = (t.float() for t in embeddings(seed=7))
    losses = [InfoNCE("cosine", tau)(ref, pos, neg)[0].item() for tau in (0.5, 1.0, 2.0)]
    assert len({round(loss, 6) for loss in losses}) == 3


def test_loss_at_initialisation_is_close_to_log_batch_size():
    torch.manual_seed(0)
    encoder = models.init("offset10-model", 20, 32, 3)
    batch = 256
    generator = torch.Generator().manual_seed(0)
    windows = torch.rand(3 * batch, 20, 10, generator=generator)
    with torch.no_grad():
        ref, pos, neg = encoder(windows).split(batch)
        total, pos_term, neg_term = InfoNCE("cosine", 1.0)(ref, pos, neg)
    assert total.item() == pytest.approx(math.log(batch), abs=0.05)
    assert -1.0 <= pos_term.item() < -0.8  # embeddings of random data start nearly aligned
    assert neg_term.item() > math.log(batch) + 0.8


def test_function_equals_module():
    ref, pos, neg = (t.float() for t in embeddings(seed=8))
    for distance in ("cosine", "euclidean"):
        module_values = InfoNCE(distance, 0.4)(ref, pos, neg)
        function_values = infonce(ref, pos, neg, distance=distance, temperature=0.4)
        for a, b in zip(module_values, function_values, strict=True):
            torch.testing.assert_close(a, b)
    pos_sim, neg_sim = dot_similarity(ref, pos, neg)
    torch.testing.assert_close(
        infonce_from_similarities(pos_sim, neg_sim)[0], infonce(ref, pos, neg)[0]
    )


# --------------------------------------------------------------------------------- Temperatures


def test_constant_mode_has_no_parameters_and_reports_its_temperature():
    criterion = InfoNCE("euclidean", 0.25)
    assert list(criterion.parameters()) == []
    assert criterion.state_dict() == {}
    assert criterion.temperature == 0.25
    assert isinstance(InfoNCE(temperature=np.float32(0.5)).temperature, float)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_learnable_equals_fixed_at_the_same_temperature(distance):
    ref, pos, neg = (t.float() for t in embeddings(seed=9))
    fixed = InfoNCE(distance, 0.6)(ref, pos, neg)
    learnable = InfoNCE(distance, 0.6, "auto", min_temperature=None)(ref, pos, neg)
    for a, b in zip(fixed, learnable, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_learnable_temperature_is_one_parameter_with_a_gradient():
    criterion = InfoNCE("cosine", 2.0, "auto", min_temperature=0.1)
    parameters = dict(criterion.named_parameters())
    assert list(parameters) == ["log_inverse_temperature"]
    assert parameters["log_inverse_temperature"].item() == pytest.approx(math.log(0.5))
    assert criterion.temperature == pytest.approx(2.0)
    assert list(criterion.state_dict()) == ["log_inverse_temperature"]
    ref, pos, neg = (t.float() for t in embeddings(seed=10))
    criterion(ref, pos, neg)[0].backward()
    assert criterion.log_inverse_temperature.grad is not None
    assert criterion.log_inverse_temperature.grad.item() != 0


def test_learnable_temperature_moves_under_adam():
    criterion = InfoNCE("cosine", 1.0, "auto")
    optimizer = torch.optim.Adam(criterion.parameters(), lr=1e-2)
    ref, pos, neg = (torch.nn.functional.normalize(t.float(), dim=1) for t in embeddings(seed=11))
    for _ in range(3):
        optimizer.zero_grad()
        criterion(ref, pos, neg)[0].backward()
        optimizer.step()
    assert criterion.temperature != pytest.approx(1.0, abs=1e-3)


def test_min_temperature_clamps_the_inverse_temperature():
    ref, pos, neg = (t.float() for t in embeddings(seed=12))
    clamped = InfoNCE("cosine", 0.05, "auto", min_temperature=0.1)
    assert clamped.temperature == pytest.approx(0.1)
    torch.testing.assert_close(clamped(ref, pos, neg)[0], InfoNCE("cosine", 0.1)(ref, pos, neg)[0])
    clamped(ref, pos, neg)[0].backward()
    assert clamped.log_inverse_temperature.grad.item() == 0
    unclamped = InfoNCE("cosine", 0.05, "auto", min_temperature=None)
    assert unclamped.temperature == pytest.approx(0.05)


def test_against_cebra_criteria():
    criterions = pytest.importorskip("cebra.models.criterions")
    ref, pos, neg = (t.float() for t in embeddings(batch=32, negatives=40, dim=5, seed=13))
    cases = [
        (InfoNCE("cosine", 0.5), criterions.FixedCosineInfoNCE(0.5)),
        (InfoNCE("euclidean", 0.5), criterions.FixedEuclideanInfoNCE(0.5)),
        (
            InfoNCE("cosine", 0.5, "auto", min_temperature=0.6),
            criterions.LearnableCosineInfoNCE(0.5, 0.6),
        ),
        (
            InfoNCE("euclidean", 0.8, "auto", min_temperature=None),
            criterions.LearnableEuclideanInfoNCE(0.8, None),
        ),
    ]
    for ours, reference in cases:
        with torch.no_grad():
            for a, b in zip(ours(ref, pos, neg), reference(ref, pos, neg), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert ours.temperature == pytest.approx(reference.temperature)
        assert set(ours.state_dict()) == set(reference.state_dict())


# ------------------------------------------------------------------------------------ Bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distance": "manhattan"}, r"Unknown distance 'manhattan'; expected one of \('cosine'"),
        (
            {"temperature_mode": "learned"},
            r"Unknown temperature_mode 'learned'.*'constant', 'auto'",
        ),
        ({"temperature": 0.0}, "temperature must be a finite number > 0, got 0.0"),
        ({"temperature": -1}, "temperature must be a finite number > 0, got -1"),
        ({"temperature": float("nan")}, "temperature must be a finite number > 0"),
        ({"temperature": "1"}, "temperature must be a positive number, got '1'"),
        ({"temperature_mode": "auto", "min_temperature": 0}, "min_temperature must be a finite"),
    ],
)
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InfoNCE(**kwargs)


def test_function_rejects_bad_distance_and_temperature():
    ref, pos, neg = (t.float() for t in embeddings())
    with pytest.raises(ValueError, match="Unknown distance 'dot'"):
        infonce(ref, pos, neg, distance="dot")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        infonce(ref, pos, neg, temperature=-0.5)
