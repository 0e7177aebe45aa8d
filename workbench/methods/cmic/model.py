"""CMIC's two encoders and the query-conditioned view attention.

Notation (paper Sec. 3): a query image ``I_j`` (RGB + object mask, 4 channels) is embedded by the
query encoder ``f_q`` into ``v_j^q`` (unit, D = 128). A shape ``i`` is given by ``M = 12`` grey
renders; the render encoder ``f_r1`` (shared across views) embeds view ``m`` into ``r_im`` (unit).
The attention ``f_r2`` turns the views into one *query-specific* shape embedding::

    k_j      = MLP(v_j^q)                          (D,)   (the official code: a bias-free D x D linear)
    a_ijm    = softmax_m( r_im . k_j / T_att )            (attention over the M views)
    v_ij^r   = sum_m a_ijm r_im                    (D,)   (a convex combination, not re-normalised)
    s_ij     = v_j^q . v_ij^r                             (the retrieval / contrastive score)

Because ``v_ij^r`` is linear in the views, ``s_ij = sum_m a_ijm (v_j^q . r_im)``: scoring never needs
the ``(B, S, D)`` tensor (see :mod:`.retrieval`, which chunks over shapes for a whole repository).

Each encoder is a backbone from :func:`workbench.nn.build_backbone` (global average pooled) + the
official head ``BatchNorm1d(C) -> Linear(C, D)`` + L2 normalisation. Inputs are scaled from [0, 1]
to [-1, 1] (the official ``Normalize(0.5, 0.5)``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.errors import ConfigError, ShapeError, check_shape


class EmbeddingEncoder(nn.Module):
    """Backbone -> global average pool -> BatchNorm1d -> Linear -> L2 normalise.

    Args:
        backbone: maps ``(N, C_in, H, W)`` to ``(N, C, h, w)`` or ``(N, C)``; ``out_channels`` = C.
        dim: embedding size D.
    """

    def __init__(self, backbone: nn.Module, dim: int = 128):
        super().__init__()
        channels = getattr(backbone, "out_channels", None)
        if not isinstance(channels, int):
            raise ConfigError(f"backbone {type(backbone).__name__} has no integer .out_channels")
        self.backbone = backbone
        self.bn = nn.BatchNorm1d(channels)
        self.fc = nn.Linear(channels, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` in [-1, 1] -> ``(N, D)`` unit vectors."""
        f = self.backbone(x)
        if f.dim() == 4:
            f = f.mean((2, 3))
        elif f.dim() != 2:
            raise ShapeError(f"backbone output must be (N, C, h, w) or (N, C), got {tuple(f.shape)}")
        return F.normalize(self.fc(self.bn(f)), dim=-1)


class ViewAttention(nn.Module):
    """Query-conditioned attention over the M views of a shape (``f_r2``).

    Args:
        dim: embedding size D.
        hidden: hidden width of the query MLP; ``0`` gives the official single bias-free ``D x D``
            linear (Luong's "general" score ``r^T W q``).
        layers: number of linear layers of the MLP when ``hidden > 0`` (>= 2).
        temperature: softmax temperature ``T_att`` of the view weights (1 in the paper/code).
    """

    def __init__(self, dim: int = 128, hidden: int = 0, layers: int = 2, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"attention temperature must be > 0, got {temperature}")
        if hidden <= 0:
            self.mlp: nn.Module = nn.Linear(dim, dim, bias=False)
        else:
            if layers < 2:
                raise ConfigError(f"attention MLP with hidden={hidden} needs layers >= 2, got {layers}")
            mods: list[nn.Module] = [nn.Linear(dim, hidden), nn.ReLU(inplace=True)]
            for _ in range(layers - 2):
                mods += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
            mods.append(nn.Linear(hidden, dim))
            self.mlp = nn.Sequential(*mods)
        self.temperature = float(temperature)
        self.dim = dim

    def keys(self, queries: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` query embeddings -> ``(B, D)`` attention keys ``k = MLP(v^q)``."""
        return self.mlp(queries)

    def weights(self, queries: torch.Tensor, views: torch.Tensor, keys: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Attention weights ``a (B, S, M)`` of every query over the views ``(S, M, D)`` of every shape."""
        k = self.keys(queries) if keys is None else keys
        return torch.softmax(torch.einsum("bd,smd->bsm", k, views) / self.temperature, dim=-1)

    def forward(self, queries: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query-specific shape embeddings for every (query, shape) pair.

        Args:
            queries: ``(B, D)``; views: ``(S, M, D)``.

        Returns:
            ``(shape_emb (B, S, D), weights (B, S, M))`` with ``shape_emb[b, s] = sum_m
            weights[b, s, m] views[s, m]``.
        """
        check_shape("queries", queries, (None, self.dim))
        check_shape("views", views, (None, None, self.dim))
        w = self.weights(queries, views)
        return torch.einsum("bsm,smd->bsd", w, views), w


class CMIC(nn.Module):
    """The full model: query encoder, shared render encoder, view attention.

    Args:
        query_encoder: :class:`EmbeddingEncoder` on 4-channel (RGB + mask) inputs.
        render_encoder: :class:`EmbeddingEncoder` on 1-channel grey renders.
        attention: :class:`ViewAttention`.
        normalize_shape: re-normalise the shape embedding ``v_ij^r`` to unit length (the official
            code does not; off by default).
        use_mask: feed the mask as the 4th query channel (off: the channel is zeros).
    """

    def __init__(self, query_encoder: EmbeddingEncoder, render_encoder: EmbeddingEncoder,
                 attention: ViewAttention, normalize_shape: bool = False, use_mask: bool = True):
        super().__init__()
        if not (query_encoder.dim == render_encoder.dim == attention.dim):
            raise ConfigError("query encoder, render encoder and attention must share the embedding size")
        self.query_encoder = query_encoder
        self.render_encoder = render_encoder
        self.attention = attention
        self.normalize_shape = normalize_shape
        self.use_mask = use_mask
        self.dim = attention.dim

    def embed_queries(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``images (B, 3, H, W)``, ``masks (B, 1, H, W)`` in [0, 1] -> ``(B, D)`` unit embeddings."""
        check_shape("images", images, (None, 3, None, None))
        check_shape("masks", masks, (images.shape[0], 1, images.shape[2], images.shape[3]))
        if not self.use_mask:
            masks = torch.zeros_like(masks)
        return self.query_encoder(torch.cat([images, masks], 1) * 2 - 1)

    def embed_views(self, renders: torch.Tensor) -> torch.Tensor:
        """``renders (S, M, 1, H, W)`` in [0, 1] -> view embeddings ``(S, M, D)`` (unit)."""
        check_shape("renders", renders, (None, None, 1, None, None))
        S, M = renders.shape[:2]
        r = self.render_encoder(renders.reshape(S * M, *renders.shape[2:]) * 2 - 1)
        return r.view(S, M, -1)

    def pair_scores(self, queries: torch.Tensor, views: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores ``s (B, S)``, attention ``a (B, S, M)`` and shape embeddings ``v^r (B, S, D)`` of
        every query against every shape (re-normalised when ``normalize_shape``)."""
        emb, w = self.attention(queries, views)
        if self.normalize_shape:
            emb = F.normalize(emb, dim=-1)
        return torch.einsum("bd,bsd->bs", queries, emb), w, emb

    def forward(self, images: torch.Tensor, masks: torch.Tensor, renders: torch.Tensor) -> dict:
        """Embed a batch of queries and shapes and score every pair.

        Returns:
            dict with ``query (B, D)``, ``views (S, M, D)``, ``scores (B, S)``, ``weights (B, S, M)``
            and ``shape_emb (B, S, D)``.
        """
        q = self.embed_queries(images, masks)
        r = self.embed_views(renders)
        s, w, emb = self.pair_scores(q, r)
        return {"query": q, "views": r, "scores": s, "weights": w, "shape_emb": emb}


def build_model(cfg) -> CMIC:
    """Build :class:`CMIC` from a :class:`~.config.ModelConfig` through :func:`workbench.nn.build_backbone`."""
    from ...nn import build_backbone

    qb = build_backbone(cfg.query_backbone, pretrained=cfg.pretrained, in_channels=4, **cfg.query_backbone_kwargs)
    rb = build_backbone(cfg.render_backbone, pretrained=cfg.pretrained, in_channels=1, **cfg.render_backbone_kwargs)
    return CMIC(EmbeddingEncoder(qb, cfg.dim), EmbeddingEncoder(rb, cfg.dim),
                ViewAttention(cfg.dim, cfg.attention_hidden, cfg.attention_layers, cfg.attention_temperature),
                normalize_shape=cfg.normalize_shape, use_mask=cfg.use_mask)
