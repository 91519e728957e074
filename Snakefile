# depthxai: explainability assessment for monocular depth estimation (Cirillo et al., IJCNN 2025, reproduced).
# The Snakefile only wires stages together; every decision lives in workflow/rules/common.smk and every
# computation in the depthxai package (src/depthxai), which each rule calls through its CLI.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default; a preset given with --configfile (e.g. config/paper.yaml) replaces it rather than being
# merged into it, while --config key=value still adjusts either.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    method="|".join(METHODS),
    shard=r"\d+",
    repeat=r"\d+",


include: "workflow/rules/download.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/attribute.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/sanity.smk"
include: "workflow/rules/retest.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
