"""Matplotlib figures of a run: training vs validation curves, as the source notebooks draw them."""

import matplotlib

matplotlib.use("Agg")  # files only; never open a window, also where a display exists
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def learning_curve(history: dict[str, list[float]], metric: str) -> Figure:
    """``metric`` per epoch for training (dots) and validation (line), when validation ran."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history[metric]) + 1)
    ax.plot(epochs, history[metric], "o", label=f"training {metric}")
    if f"val_{metric}" in history:
        ax.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
    ax.set(xlabel="epoch", ylabel=metric, title=f"Training and validation {metric}")
    ax.legend()
    fig.tight_layout()
    return fig
