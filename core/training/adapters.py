"""Houlsby-style bottleneck adapters: a small residual MLP after each attention output and each feed-forward output projection.

Each adapted projection computes y = W x + b, then y + up(gelu(down(y))), with `up` zero-initialised so training starts
from the pretrained function. Only the adapters, the layer norms and the task head train (Houlsby et al., 2019)."""

from __future__ import annotations

import re

from torch import nn

# output projections of the attention block and of the feed-forward block, by architecture family:
# BERT/RoBERTa/MiniLM (attention.output.dense, layer.N.output.dense), DistilBERT (out_lin, ffn.lin2),
# Llama-style (o_proj, down_proj)
TARGETS = re.compile(
    r"(attention\.output\.dense|layer\.\d+\.output\.dense|attention\.out_lin|ffn\.lin2|self_attn\.o_proj|mlp\.down_proj)$"
)


class BottleneckAdapter(nn.Module):
    """x + up(gelu(down(x))): hidden -> hidden // reduction -> hidden, the up-projection starting at zero (identity)."""

    def __init__(self, hidden: int, reduction: int):
        super().__init__()
        self.reduction = reduction
        self.down = nn.Linear(hidden, max(1, hidden // reduction))
        self.up = nn.Linear(max(1, hidden // reduction), hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return x + self.up(nn.functional.gelu(self.down(x)))


class AdaptedLinear(nn.Module):
    """A pretrained projection followed by its adapter."""

    def __init__(self, base: nn.Linear, reduction: int):
        super().__init__()
        self.base = base
        self.adapter = BottleneckAdapter(base.out_features, reduction)

    def forward(self, x):
        return self.adapter(self.base(x))


def add_adapters(body: nn.Module, reduction: int) -> int:
    """Wrap every attention and feed-forward output projection of body in place; returns how many were adapted."""
    targets = [name for name, m in body.named_modules() if isinstance(m, nn.Linear) and TARGETS.search(name)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = body.get_submodule(parent_name) if parent_name else body
        setattr(parent, child, AdaptedLinear(getattr(parent, child), reduction))
    return len(targets)


def reduction_of(body: nn.Module) -> int:
    """The reduction factor of body's adapters (0 when it has none)."""
    for m in body.modules():
        if isinstance(m, BottleneckAdapter):
            return m.reduction
    return 0


def mark_trainable(model: nn.Module, body_prefix: str) -> None:
    """Train the adapters, every layer norm and everything outside the body (the head); freeze the rest."""
    norms = {name for name, m in model.named_modules() if isinstance(m, nn.LayerNorm) or "norm" in type(m).__name__.lower()}
    for name, p in model.named_parameters():
        owner = name.rpartition(".")[0]
        p.requires_grad = ".adapter." in name or owner in norms or not name.startswith(body_prefix + ".")
