# Backtracking Improves Generation Safety (Zhang et al., ICLR 2025) as one Snakemake graph.
# Default: the embedded SmolLM2-135M-Instruct, offline, on CPU. Paper scale:
#   snakemake --configfile config/paper.yaml --profile profiles/slurm results/table1.csv
from snakemake.utils import min_version

min_version("9.19")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/helpfulness.smk"
include: "workflow/rules/demo.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
