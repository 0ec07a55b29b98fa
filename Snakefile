# microclip-bench: microCLIP (arXiv:2510.02270) and unsupervised CLIP-adaptation baselines.
#
#   LLM descriptions -> text prototypes per backbone -> adaptation per
#   dataset x seed x backbone x method -> evaluation -> tables, ablations, plots, report
#
# Paper grid (plans offline):  snakemake -n --cores 8
# Offline demo:                snakemake --cores 2 --configfile config/demo.yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# Snakemake's own message for a YAML error names no file; name file and line first.
# (Files given with --configfile are parsed before this line: `microclip check-config
# FILE...` names them the same way.)
if not workflow.config_settings.replace_workflow_config:
    from microclip.config import read_yaml
    from microclip.errors import ConfigError

    try:
        read_yaml("config.yaml")
    except ConfigError as err:
        raise WorkflowError(str(err))


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/descriptions.smk"
include: "workflow/rules/prototypes.smk"
include: "workflow/rules/diagnose.smk"
include: "workflow/rules/adapt.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
