"""The VORTEX networks: per-slice ViT image encoders with attentional poolers, an
scGPT-like gene encoder and the expression predictor.

Shapes: B batch, D depth (slices), C channels, H = W patch side, E embedding, Q
reconstruction queries, G genes, H_p predictor hidden size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import TIMM, TimmBackbone, is_timm, load_backbone_weights
from .config import ModelConfig


class Attention(nn.Module):
    """Multi-head attention written with shape-agnostic reshapes (`unflatten` of the
    feature axis only), so exported graphs keep batch and sequence lengths dynamic."""

    def __init__(self, width: int, heads: int, kv_width: int | None = None):
        super().__init__()
        kv_width = kv_width or width
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(kv_width, width)
        self.v = nn.Linear(kv_width, width)
        self.out = nn.Linear(width, width)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, width), kv (B, Nk, kv_width) -> (B, Nq, width)."""
        d = self.q.out_features // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.heads, d)).transpose(1, 2)

        o = F.scaled_dot_product_attention(split(self.q(q)), split(self.k(kv)), split(self.v(kv)))
        return self.out(o.transpose(1, 2).flatten(2))


class Block(nn.Module):
    """Pre-norm transformer block (attention + GELU MLP); written out rather than
    `nn.TransformerEncoderLayer` so that training, inference and ONNX export share one
    code path."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width * mlp_ratio), nn.GELU(), nn.Linear(width * mlp_ratio, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, width) -> (B, N, width)."""
        h = self.ln1(x)
        x = x + self.attn(h, h)
        return x + self.mlp(self.ln2(x))


class AttentionalPooler(nn.Module):
    """CoCa-style pooler: learnable queries cross-attend to a token sequence."""

    def __init__(self, width: int, out_dim: int, n_queries: int, heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, out_dim) * 0.02)
        self.ln_k = nn.LayerNorm(width)
        self.attn = Attention(out_dim, heads, kv_width=width)
        self.ln_q = nn.LayerNorm(out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, width) -> (B, n_queries, out_dim)."""
        kv = self.ln_k(tokens)
        q = self.ln_q(self.queries).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        return self.attn(q, kv)


class SliceViT(nn.Module):
    """A plain ViT applied to every slice independently (CONCH-style backbone)."""

    def __init__(self, cfg: ModelConfig, channels: int):
        super().__init__()
        self.width = cfg.vit_width
        self.patch = nn.Conv2d(channels, cfg.vit_width, cfg.vit_patch, stride=cfg.vit_patch)
        n_tok = (cfg.image_size // cfg.vit_patch) ** 2
        self.pos = nn.Parameter(torch.randn(1, n_tok, cfg.vit_width) * 0.02)
        self.blocks = nn.ModuleList([Block(cfg.vit_width, cfg.vit_heads) for _ in range(cfg.vit_layers)])
        self.ln = nn.LayerNorm(cfg.vit_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> tokens (N, T, width)."""
        t = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.ln(t)

    def tail(self) -> list[nn.Module]:
        """Modules after the last block (trained with it in stage III)."""
        return [self.ln]


def make_backbone(cfg: ModelConfig, channels: int) -> nn.Module:
    """The per-slice backbone `cfg.backbone` names: the built-in ViT or a timm model."""
    if is_timm(cfg.backbone):
        return TimmBackbone(cfg.backbone[len(TIMM) :], channels, cfg.image_size, cfg.backbone_kwargs)
    if cfg.backbone:
        raise ValueError(f"backbone {cfg.backbone!r}: expected '' (built-in ViT) or 'timm:<model name>'")
    return SliceViT(cfg, channels)


class ImageEncoder(nn.Module):
    """3D (or 2.5D, or 2D with depth 1) image encoder.

    Each slice goes through the ViT, a learnable per-depth embedding is added, the
    tokens of all slices are concatenated, and two attentional poolers read them: a
    contrastive one (1 query -> normalised E-d embedding) and a reconstruction one
    (Q queries -> Q x E tokens).
    """

    def __init__(self, cfg: ModelConfig, channels: int, max_depth: int):
        super().__init__()
        self.vit = make_backbone(cfg, channels)
        width = self.vit.width
        self.depth_emb = nn.Parameter(torch.zeros(max_depth, width))
        self.contrast = AttentionalPooler(width, cfg.embed_dim, 1, cfg.vit_heads)
        self.recon = AttentionalPooler(width, cfg.embed_dim, cfg.recon_queries, cfg.vit_heads)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, D, C, H, W) -> (embedding (B, E) unit norm, tokens (B, Q, E))."""
        d = x.shape[1]
        t = self.vit(x.flatten(0, 1)).unflatten(0, (-1, d))  # (B, D, N, width)
        t = (t + self.depth_emb[:d].unsqueeze(1)).flatten(1, 2)  # (B, D*N, width)
        emb = self.proj(self.contrast(t)[:, 0])
        return F.normalize(emb, dim=-1), self.recon(t)


class GeneEncoder(nn.Module):
    """scGPT-like transcriptome encoder.

    Every gene is a token: gene-identity embedding + value-bin embedding. Values are
    log1p-normalised expression; the bin of a value is the number of learned edges
    (quantiles of non-zero training values) it exceeds, so 0 stays bin 0. A CLS token
    summarises the spot and is projected to the normalised E-d embedding.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        g = len(cfg.encoder_genes)
        self.gene_emb = nn.Parameter(torch.randn(g, cfg.gene_width) * 0.02)
        self.value_emb = nn.Embedding(cfg.value_bins, cfg.gene_width)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.gene_width))
        self.register_buffer("edges", torch.linspace(0.0, 5.0, cfg.value_bins)[1:])
        self.blocks = nn.ModuleList([Block(cfg.gene_width, cfg.gene_heads) for _ in range(cfg.gene_layers)])
        self.ln = nn.LayerNorm(cfg.gene_width)
        self.proj = nn.Linear(cfg.gene_width, cfg.embed_dim, bias=False)

    def set_bin_edges(self, values: torch.Tensor) -> None:
        """Set the value-bin edges from training values (quantiles of the non-zero ones)."""
        nz = values[values > 0].float()
        n_edges = self.edges.numel()
        if nz.numel() == 0:
            return
        qs = torch.linspace(0, 1, n_edges + 1)[:-1]
        edges = torch.quantile(nz[:1_000_000], qs)
        edges[0] = torch.clamp(edges[0], max=1e-6)  # any non-zero value is at least bin 1
        self.edges.copy_(edges)

    def bins(self, values: torch.Tensor) -> torch.Tensor:
        """(B, G) values -> (B, G) integer bins."""
        return (values.unsqueeze(-1) > self.edges).sum(-1)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """values (B, G) -> embedding (B, E) unit norm."""
        t = self.gene_emb.unsqueeze(0) + self.value_emb(self.bins(values))
        t = torch.cat([self.cls.expand(values.shape[0], -1, -1), t], dim=1)
        for blk in self.blocks:
            t = blk(t)
        return F.normalize(self.proj(self.ln(t[:, 0])), dim=-1)


class Predictor(nn.Module):
    """One transformer layer over the reconstruction tokens, then FC to the genes.

    The activation before the last FC (`hidden`) is the representation used for
    k-means spatial domains.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layer = Block(cfg.embed_dim, 4, mlp_ratio=2)
        self.hidden = nn.Sequential(
            nn.LayerNorm(cfg.embed_dim), nn.Linear(cfg.embed_dim, cfg.predictor_hidden), nn.GELU()
        )
        self.out = nn.Linear(cfg.predictor_hidden, len(cfg.predicted_genes))

    def init_output_bias(self, mean_expression: torch.Tensor) -> None:
        """Start predictions at the training mean so that early MSE gradients teach
        variation around it rather than the offset."""
        with torch.no_grad():
            self.out.bias.copy_(mean_expression)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, Q, E) -> (expression (B, G), hidden (B, H_p))."""
        h = self.hidden(self.layer(tokens).mean(1))
        return self.out(h), h


class DomainHead(nn.Module):
    """Classifies the source domain of an embedding (used behind gradient reversal)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.embed_dim, 64), nn.GELU(), nn.Linear(64, max(cfg.n_domains, 1)))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """emb (B, E) -> logits (B, n_domains)."""
        return self.net(emb)


class Vortex(nn.Module):
    """All VORTEX networks together: 2D and 3D image encoders, gene encoder, predictor."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.image_2d = ImageEncoder(cfg, cfg.channels_2d, 1)
        self.image_3d = ImageEncoder(cfg, cfg.channels_3d, cfg.max_depth)
        self.genes = GeneEncoder(cfg)
        self.predictor = Predictor(cfg)
        self.domain = DomainHead(cfg)

    def init_3d_from_2d(self) -> None:
        """Start the 3D encoder from the trained 2D one (stage II): copy every weight;
        the input convolution is inflated across channels (RGB -> grey by averaging, or
        copied when channel counts agree); every depth starts at the 2D depth embedding.
        """
        src = self.image_2d.state_dict()
        dst = self.image_3d.state_dict()
        for k, v in src.items():
            if v.ndim == 4 and v.shape != dst[k].shape and v.shape[0] == dst[k].shape[0]:
                c = dst[k].shape[1]
                dst[k] = v.mean(1, keepdim=True).repeat(1, c, 1, 1) * (v.shape[1] / c)
            elif k == "depth_emb":
                dst[k] = v[0:1].repeat(dst[k].shape[0], 1)
            else:
                dst[k] = v.clone()
        self.image_3d.load_state_dict(dst)


def load_pretrained_vit(encoder: ImageEncoder, path: str) -> dict[str, list[str]]:
    """Load a local state dict into an image encoder's backbone (built-in ViT or timm
    model); see `backbones.load_backbone_weights` for the layouts read. Returns the
    loaded, missing and skipped keys."""
    return load_backbone_weights(encoder.vit, path)
