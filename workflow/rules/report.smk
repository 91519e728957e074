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
        STATS_ENV
    params:
        baseline=config["claims"]["baseline"],
        out_dir=output_dir,
    shell:
        "python -m depthxai tables --summary {input.summary:q} --friedman {input.friedman:q} "
        "--paired {input.paired:q} --accuracy {input.accuracy:q} --baseline {params.baseline:q} "
        "--out-dir {params.out_dir:q} 2> {log:q}"


rule qualitative_panels:
    input:
        unpack(get_qualitative_inputs),
    output:
        "results/figures/panels/figure1_{dataset}_{model}.npz",
    log:
        "logs/report/figure1_panels_{dataset}_{model}.log",
    conda:
        TORCH_ENV
    params:
        model=panel_model_options,
        n_images=config["report"]["qualitative_images"],
    shell:
        "python -m depthxai qualitative-panels {params.model:q} --data {input.data:q} "
        "--predictions {input.predictions:q} --attributions {input.attributions:q} --n-images {params.n_images:q} "
        "--out {output:q} 2> {log:q}"


rule figure_qualitative:
    input:
        "results/figures/panels/figure1_{dataset}_{model}.npz",
    output:
        report(
            expand("results/figures/figure1_{{dataset}}_{{model}}.{ext}", ext=FIGURE_FORMATS),
            caption="../report/figure1.rst",
            category="Figures",
            subcategory="Figure 1: qualitative",
        ),
    log:
        "logs/report/figure1_{dataset}_{model}.log",
    conda:
        STATS_ENV
    params:
        stem=output_stem,
        formats=FIGURE_FORMATS,
    shell:
        "python -m depthxai figure-qualitative --panels {input:q} --formats {params.formats:q} "
        "--out-stem {params.stem:q} 2> {log:q}"


rule figure_curves:
    input:
        "results/evaluation/curves.csv",
    output:
        report(
            expand("results/figures/figure2.{ext}", ext=FIGURE_FORMATS),
            caption="../report/figure2.rst",
            category="Figures",
        ),
    log:
        "logs/report/figure2.log",
    conda:
        STATS_ENV
    params:
        formats=FIGURE_FORMATS,
        stem=output_stem,
    shell:
        "python -m depthxai figure-curves --curves {input:q} --formats {params.formats:q} "
        "--out-stem {params.stem:q} 2> {log:q}"


rule figure_fidelity:
    input:
        "results/evaluation/scores.csv",
    output:
        report(
            expand("results/figures/figure3.{ext}", ext=FIGURE_FORMATS),
            caption="../report/figure3.rst",
            category="Figures",
        ),
    log:
        "logs/report/figure3.log",
    conda:
        STATS_ENV
    params:
        formats=FIGURE_FORMATS,
        stem=output_stem,
    shell:
        "python -m depthxai figure-fidelity --scores {input:q} --formats {params.formats:q} "
        "--out-stem {params.stem:q} 2> {log:q}"


rule claims:
    input:
        "results/evaluation/scores.csv",
    output:
        md=report("results/claims.md", caption="../report/claims.rst", category="Claims"),
        csv="results/claims.csv",
    log:
        "logs/science/claims.log",
    conda:
        STATS_ENV
    params:
        alpha=config["stats"]["alpha"],
        claims=json_param("claims"),
    shell:
        "python -m depthxai claims --scores {input:q} --claims {params.claims:q} --alpha {params.alpha:q} "
        "--out-md {output.md:q} --out-csv {output.csv:q} 2> {log:q}"


rule science_report:
    input:
        sanity=expand("results/science/{pair}/sanity.csv", pair=PAIR_PATHS),
        localisation=expand("results/science/{pair}/localisation.csv", pair=PAIR_PATHS),
        object_shift=OBJECT_SHIFT_FILES,
        scores="results/evaluation/scores.csv",
        spearman="results/science/reliability/spearman.csv",
        alpha="results/science/reliability/alpha.csv",
        icc="results/science/reliability/icc.csv",
    output:
        figures=report(
            expand("results/figures/{fig}.{ext}", fig=SCIENCE_FIGURES, ext=FIGURE_FORMATS),
            caption="../report/science.rst",
            category="Evaluation science",
        ),
        tables=report(
            expand("results/tables/{table}.{ext}", table=SCIENCE_TABLES, ext=["csv", "md", "tex"]),
            caption="../report/science_tables.rst",
            category="Evaluation science",
        ),
    log:
        "logs/science/science_report.log",
    conda:
        STATS_ENV
    params:
        formats=FIGURE_FORMATS,
        figures_dir=lambda wildcards, output: Path(output.figures[0]).parent,
        tables_dir=lambda wildcards, output: Path(output.tables[0]).parent,
    shell:
        "python -m depthxai science-report --sanity {input.sanity:q} --localisation {input.localisation:q} "
        "--object-shift {input.object_shift:q} --scores {input.scores:q} --spearman {input.spearman:q} "
        "--alpha-table {input.alpha:q} --icc {input.icc:q} --formats {params.formats:q} "
        "--out-dir {params.figures_dir:q} --tables-dir {params.tables_dir:q} 2> {log:q}"
