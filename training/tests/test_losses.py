"""Each loss against a value computed by hand."""

import math

import torch
from torch import nn

from vortex_train.losses import DomainAdversarial, InfoNCE, TokenL2, grad_reverse


def test_infonce_two_pairs_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    tau = 0.5
    # logits a b^T / tau = [[2, 1.2], [0, 1.6]]
    row0 = -2 + math.log(math.exp(2) + math.exp(1.2))
    row1 = -1.6 + math.log(math.exp(0) + math.exp(1.6))
    # transposed: [[2, 0], [1.2, 1.6]]
    col0 = -2 + math.log(math.exp(2) + math.exp(0))
    col1 = -1.6 + math.log(math.exp(1.2) + math.exp(1.6))
    expected = 0.5 * ((row0 + row1) / 2 + (col0 + col1) / 2)
    got = InfoNCE(tau)(a, b).item()
    assert abs(got - expected) < 1e-6, (got, expected)


def test_infonce_is_lower_for_matching_pairs():
    a = torch.eye(4)
    assert InfoNCE(0.1)(a, a) < InfoNCE(0.1)(a, a.flip(0))


def test_token_l2_by_hand():
    a = torch.zeros(1, 2, 2)
    b = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])  # distances 5 and 1
    assert abs(TokenL2()(a, b).item() - 3.0) < 1e-6


def test_domain_adversarial_value_and_reversed_gradient():
    head = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[2.0, 0.0]], requires_grad=True)
    loss = DomainAdversarial(head, lam=0.1)(emb, torch.tensor([0]))
    expected = -2 + math.log(math.exp(2) + 1)  # cross-entropy of logits (2, 0), class 0
    assert abs(loss.item() - expected) < 1e-6
    loss.backward()
    # d CE / d emb = W^T (softmax - onehot); reversed and scaled by 0.1
    p0 = math.exp(2) / (math.exp(2) + 1)
    grad = torch.tensor([p0 - 1, 1 - p0]) * -0.1
    assert torch.allclose(emb.grad[0], grad, atol=1e-6)


def test_grad_reverse_identity_forward():
    x = torch.randn(3, requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.5))
