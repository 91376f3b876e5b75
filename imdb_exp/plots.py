"""Matplotlib figures of a run: training vs validation curves, as the source notebooks draw them.

Figures are built as plain ``Figure`` objects rather than through pyplot: no GUI backend is
involved and nothing stays registered after the figure is saved, which matters in long sweeps.
"""

from matplotlib.figure import Figure


def learning_curve(history: dict[str, list[float]], metric: str) -> Figure:
    """``metric`` per epoch for training (dots) and validation (line), when validation ran."""
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    epochs = range(1, len(history[metric]) + 1)
    ax.plot(epochs, history[metric], "o", label=f"training {metric}")
    if f"val_{metric}" in history:
        ax.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
    ax.set(xlabel="epoch", ylabel=metric, title=f"Training and validation {metric}")
    ax.legend()
    return fig
