"""Snakemake wrapper: saliency .npz (images, ncut_mask, soap_attention, cls_attention) -> figure."""

import logging

from microclip.report import plot_saliency

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821 (injected by Snakemake)
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)

plot_saliency(
    snakemake.input.npz,  # noqa: F821
    snakemake.output.png,  # noqa: F821
    snakemake.output.pdf,  # noqa: F821
    title=f"{snakemake.wildcards.dataset} / {snakemake.wildcards.backbone}",  # noqa: F821
    max_images=snakemake.params.max_images,  # noqa: F821
)
