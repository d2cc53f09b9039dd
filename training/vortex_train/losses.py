"""The VORTEX training losses, each an `nn.Module` tested against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InfoNCE(nn.Module):
    """Symmetric InfoNCE (CLIP loss): matching rows of `a` and `b` are the positives.

    loss = (CE(a b^T / tau, I) + CE(b a^T / tau, I)) / 2, inputs assumed unit norm.
    """

    def __init__(self, tau: float = 0.1):
        super().__init__()
        self.tau = tau

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b (B, E) -> scalar."""
        logits = a @ b.t() / self.tau
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; gradient multiplied by -lam backward."""
    return _GradReverse.apply(x, lam)


class DomainAdversarial(nn.Module):
    """Domain-adversarial loss: a head classifies the source of each embedding through
    a gradient-reversal layer, so the encoder learns source-invariant embeddings.

    The forward value is the head's cross-entropy; the encoder receives -lambda times
    its gradient.
    """

    def __init__(self, head: nn.Module, lam: float = 0.1):
        super().__init__()
        self.head = head
        self.lam = lam

    def forward(self, emb: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """emb (B, E), domain (B,) int -> scalar."""
        return F.cross_entropy(self.head(grad_reverse(emb, self.lam)), domain)


class TokenL2(nn.Module):
    """Mean Euclidean distance between matching reconstruction tokens (B, Q, E)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b (B, Q, E) -> scalar."""
        return (a - b).pow(2).sum(-1).clamp_min(1e-12).sqrt().mean()
