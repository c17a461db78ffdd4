"""Pictures of models and studies (matplotlib figures, no pyplot state)."""

from .model_plots import PLOT_KINDS, caterpillar, interaction, pairs, plot_model, resolve_kind, spaghetti

__all__ = ["plot_model", "resolve_kind", "spaghetti", "interaction", "caterpillar", "pairs", "PLOT_KINDS"]
