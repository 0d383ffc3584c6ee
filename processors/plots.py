"""Training curves as a picture: loss and learning rate per epoch, AP per evaluation."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_curves(history, path):
    """Write ``path`` (PNG) from the per-epoch ``history`` records of the processor."""
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    losses = [h["loss"] for h in history]
    axes[0].plot(epochs, losses, marker="o", ms=3)  # RLE's negative log-likelihood can be < 0
    axes[0].set(title="training loss", xlabel="epoch", yscale="log" if min(losses) > 0 else "linear")
    axes[1].plot(epochs, [h["lr"] for h in history], marker="o", ms=3)
    axes[1].set(title="learning rate (last step of the epoch)", xlabel="epoch")
    evals = [h for h in history if h.get("stats")]
    for name in ("AP", "AP .5", "AR"):
        axes[2].plot([h["epoch"] for h in evals], [h["stats"][name] for h in evals], marker="o", ms=3,
                     label=name)
    axes[2].set(title="COCO keypoints (val)", xlabel="epoch", ylim=(0, 1))
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
