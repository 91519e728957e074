# Report: Tables 1-2, the accuracy table, Figures 1-3; `snakemake --report` collects them with captions.


rule tables:
    input:
        summary="results/stats/summary.csv",
        friedman="results/stats/friedman.csv",
        accuracy="results/evaluation/accuracy.csv",
    output:
        report(
            multiext("results/tables/table1", ".csv", ".md", ".tex"),
            caption="../report/table1.rst",
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
    shell:
        "python -m depthxai tables --summary {input.summary} --friedman {input.friedman} --accuracy {input.accuracy} "
        "--out-dir results/tables 2> {log}"


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
        formats=" ".join(figure_formats()),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai figure-qualitative --model {params.name} --data {input.data} --predictions {input.predictions} "
        "--attributions {input.attributions} --n-images {params.n_images} --formats {params.formats} "
        "--out-stem {params.stem} 2> {log}"


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
        formats=" ".join(figure_formats()),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai figure-curves --curves {input} --formats {params.formats} --out-stem results/figures/figure2 2> {log}"


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
        formats=" ".join(figure_formats()),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai figure-fidelity --scores {input} --formats {params.formats} --out-stem results/figures/figure3 2> {log}"
