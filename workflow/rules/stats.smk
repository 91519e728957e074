# Statistics: per-metric summaries with bootstrap CIs, Friedman across methods, Holm-corrected Wilcoxon pairs.


rule statistics:
    input:
        "results/evaluation/scores.csv",
    output:
        summary="results/stats/summary.csv",
        friedman="results/stats/friedman.csv",
        wilcoxon="results/stats/wilcoxon.csv",
    log:
        "logs/stats/statistics.log",
    benchmark:
        "results/benchmarks/stats/statistics.tsv"
    params:
        stats=json_param("stats"),
        seed=config["seed"],
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai stats --scores {input} --stats '{params.stats}' --seed {params.seed} "
        "--out-summary {output.summary} --out-friedman {output.friedman} --out-wilcoxon {output.wilcoxon} 2> {log}"
