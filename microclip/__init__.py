"""microclip-bench: microCLIP and the unsupervised CLIP-adaptation baselines in one harness."""

__version__ = "0.1.0"
