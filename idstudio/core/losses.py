"""Reliability-weighted symmetric InfoNCE over a batch of mined pairs.

For a batch of n pairs with embeddings ``za`` (earlier frame) and ``zb`` (later frame), the
logits are ``L = za @ zb.T / τ``: row i's positive is column i, every other column is an
in-batch negative (pairs built from the same frames are the free same-frame negatives),
plus optional ``extra`` negatives appended as columns (for a→b) and rows (for b→a).

* Same-component entries (two pairs of one pseudo-tracklet are the same person) are masked
  out of the denominators: ``component[i] == component[j] >= 0`` for i ≠ j.
* Weights are the pairs' reliabilities, detached and normalised over the batch.
* Rows flagged ``positive=False`` are human-rejected pairs: never a positive; their loss is
  ``-log(1 - p_ii)`` (push b's share of a's softmax, and a's of b's, towards 0) and their
  embeddings remain in-batch negatives for every other row.

loss = Σ_i ŵ_i · ½ (ℓ_i^{a→b} + ℓ_i^{b→a}), ŵ = w / Σ w.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reliability_info_nce(za: torch.Tensor, zb: torch.Tensor, weights: torch.Tensor | None = None,
                         tau: float = 0.1, component: torch.Tensor | None = None,
                         positive: torch.Tensor | None = None, extra: torch.Tensor | None = None,
                         extra_component: torch.Tensor | None = None) -> torch.Tensor:
    n = za.shape[0]
    device = za.device
    logits = za.float() @ zb.float().T / tau  # (n, n)
    if component is not None:
        comp = component.to(device)
        same = (comp[:, None] == comp[None, :]) & (comp[:, None] >= 0)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    row_logits, col_logits = logits, logits.T  # col_logits[j] = row j of the b->a direction
    if extra is not None and len(extra):
        ea = za.float() @ extra.float().T / tau  # (n, m)
        eb = zb.float() @ extra.float().T / tau
        if extra_component is not None and component is not None:
            ex = extra_component.to(device)
            same_e = (component.to(device)[:, None] == ex[None, :]) & (ex[None, :] >= 0)
            ea = ea.masked_fill(same_e, float("-inf"))
            eb = eb.masked_fill(same_e, float("-inf"))
        row_logits = torch.cat([row_logits, ea], dim=1)
        col_logits = torch.cat([col_logits, eb], dim=1)
    idx = torch.arange(n, device=device)
    log_p_ab = F.log_softmax(row_logits, dim=1)[idx, idx]
    log_p_ba = F.log_softmax(col_logits, dim=1)[idx, idx]
    if positive is None:
        per_row = -(log_p_ab + log_p_ba) / 2
    else:
        pos = positive.to(device).bool()
        neg_ab = -torch.log1p(-log_p_ab.exp().clamp(max=1 - 1e-6))
        neg_ba = -torch.log1p(-log_p_ba.exp().clamp(max=1 - 1e-6))
        per_row = torch.where(pos, -(log_p_ab + log_p_ba) / 2, (neg_ab + neg_ba) / 2)
    return _weighted_mean(per_row, weights)


def masked_info_nce(za: torch.Tensor, zb: torch.Tensor, certain: torch.Tensor, weights: torch.Tensor | None = None,
                    tau: float = 0.1) -> torch.Tensor:
    """InfoNCE over the 2n views of n (anchor, positive) elements where only *certain*
    negatives count (the tracklet sampler's loss).

    ``certain[i, j]``: elements i and j are certainly different people (see
    ``core.tracklets.certain_negatives``). Each view's positive is its element's other
    view; its negatives are both views of every element certain for it; everything else
    (possibly the same person) is masked out. Weights are detached and normalised over the
    batch as in ``reliability_info_nce``.
    """
    n = za.shape[0]
    device = za.device
    z = torch.cat([za, zb]).float()
    logits = z @ z.T / tau  # (2n, 2n)
    element = torch.arange(2 * n, device=device) % n
    allowed = certain.to(device).bool()[element[:, None], element[None, :]]
    partner = (torch.arange(2 * n, device=device) + n) % (2 * n)
    allowed[torch.arange(2 * n, device=device), partner] = True
    logits = logits.masked_fill(~allowed, float("-inf"))
    per_view = -F.log_softmax(logits, dim=1)[torch.arange(2 * n, device=device), partner]
    per_row = (per_view[:n] + per_view[n:]) / 2
    return _weighted_mean(per_row, weights)


def _weighted_mean(per_row: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Σ ŵ_i · loss_i with ŵ the detached, non-negative weights normalised over the batch
    (uniform when none are given or they sum to 0)."""
    n, device = per_row.shape[0], per_row.device
    uniform = torch.full((n,), 1.0 / n, device=device)
    if weights is None:
        return (uniform * per_row).sum()
    w = weights.detach().float().to(device).clamp(min=0)
    total = w.sum()
    return ((w / total if total > 0 else uniform) * per_row).sum()
