# Report: Tables 1-2, the accuracy table, Figures 1-3; `snakemake --report` collects them with captions.


rule tables:
    input:
        summary="results/stats/summary.csv",
        friedman="results/stats/friedman.csv",
        paired="results/stats/paired.csv",
        accuracy="results/evaluation/accuracy.csv",
    output:
        report(
            multiext("results/tables/table1", ".csv", ".md", ".tex"),
            caption="../report/table1.rst",
            category="Tables",
        ),
        report(
            multiext("results/tables/table1_depth", ".csv", ".md", ".tex"),
            caption="../report/table1_depth.rst",
            category="Tables",
        ),
        report(
            multiext("results/tables/table2", ".csv", ".md", ".tex"),
            caption="../report/table2.rst",
            category="Tables",
        ),
        report(
            multiext("results/tables/accuracy", ".csv", ".md", ".tex"),
            caption="../report/accuracy.rst",
            category="Tables",
        ),
    log:
        "logs/report/tables.log",
    conda:
        "../../envs/stats.yaml"
    params:
        baseline=config["claims"]["baseline"],
    shell:
        "python -m depthxai tables --summary {input.summary:q} --friedman {input.friedman:q} --paired {input.paired:q} "
        "--accuracy {input.accuracy:q} --baseline {params.baseline:q} --out-dir results/tables 2> {log:q}"


rule figure_qualitative:
    input:
        unpack(get_qualitative_inputs),
    output:
        report(
            expand("results/figures/figure1_{{dataset}}_{{model}}.{ext}", ext=figure_formats()),
            caption="../report/figure1.rst",
            category="Figures",
            subcategory="Figure 1: qualitative",
        ),
    log:
        "logs/report/figure1_{dataset}_{model}.log",
    params:
        name=model_name,
        n_images=config["report"]["qualitative_images"],
        stem="results/figures/figure1_{dataset}_{model}",
        formats=figure_formats(),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai figure-qualitative --model {params.name:q} --data {input.data:q} --predictions {input.predictions:q} "
        "--attributions {input.attributions:q} --n-images {params.n_images:q} --formats {params.formats:q} "
        "--out-stem {params.stem:q} 2> {log:q}"


rule figure_curves:
    input:
        "results/evaluation/curves.csv",
    output:
        report(
            expand("results/figures/figure2.{ext}", ext=figure_formats()),
            caption="../report/figure2.rst",
            category="Figures",
        ),
    log:
        "logs/report/figure2.log",
    params:
        formats=figure_formats(),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai figure-curves --curves {input:q} --formats {params.formats:q} --out-stem results/figures/figure2 2> {log:q}"


rule figure_fidelity:
    input:
        "results/evaluation/scores.csv",
    output:
        report(
            expand("results/figures/figure3.{ext}", ext=figure_formats()),
            caption="../report/figure3.rst",
            category="Figures",
        ),
    log:
        "logs/report/figure3.log",
    params:
        formats=figure_formats(),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai figure-fidelity --scores {input:q} --formats {params.formats:q} --out-stem results/figures/figure3 2> {log:q}"
