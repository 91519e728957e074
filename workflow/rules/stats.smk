# Statistics: per-metric summaries with bootstrap CIs, Friedman across methods, Holm-corrected Wilcoxon pairs.


rule statistics:
    input:
        scores="results/evaluation/scores.csv",
        retest=get_training_seed_retest,
    output:
        summary="results/stats/summary.csv",
        friedman="results/stats/friedman.csv",
        wilcoxon="results/stats/wilcoxon.csv",
        paired="results/stats/paired.csv",
    log:
        "logs/stats/statistics.log",
    benchmark:
        "results/benchmarks/stats/statistics.tsv"
    params:
        stats=json_param("stats"),
        seed=config["seed"],
        baseline=config["claims"]["baseline"],
        retest=lambda wildcards, input: ["--retest", *input.retest] if input.retest else [],
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai stats --scores {input.scores:q} {params.retest:q} --stats {params.stats:q} "
        "--seed {params.seed:q} --baseline {params.baseline:q} --out-summary {output.summary:q} "
        "--out-friedman {output.friedman:q} --out-wilcoxon {output.wilcoxon:q} --out-paired {output.paired:q} 2> {log:q}"
