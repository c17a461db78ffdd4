"""Pictures of models and studies (matplotlib figures, no pyplot state)."""

from .model_plots import PLOT_KINDS, caterpillar, choose_plot_kind, interaction, pairs, plot_model, spaghetti

__all__ = ["plot_model", "choose_plot_kind", "spaghetti", "interaction", "caterpillar", "pairs", "PLOT_KINDS"]
