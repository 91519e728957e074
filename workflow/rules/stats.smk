# Statistics: per-metric summaries with bootstrap CIs, Friedman across methods, Holm-corrected Wilcoxon pairs, and
# each method's paired difference to the smoothness-matched baseline (two-level bootstrap with training seeds).


rule statistics:
    input:
        scores="results/evaluation/scores.csv",
        retest=TRAINING_SEED_RETEST,
    output:
        summary="results/stats/summary.csv",
        friedman="results/stats/friedman.csv",
        wilcoxon="results/stats/wilcoxon.csv",
        paired="results/stats/paired.csv",
    log:
        "logs/stats/statistics.log",
    benchmark:
        "results/benchmarks/stats/statistics.tsv"
    conda:
        STATS_ENV
    params:
        stats=json_param("stats"),
        seed=config["seed"],
        baseline=config["claims"]["baseline"],
        retest=lambda wildcards, input: ["--retest", *input.retest] if input.retest else [],
    shell:
        "python -m depthxai stats --scores {input.scores:q} {params.retest:q} --stats {params.stats:q} "
        "--seed {params.seed:q} --baseline {params.baseline:q} --out-summary {output.summary:q} "
        "--out-friedman {output.friedman:q} --out-wilcoxon {output.wilcoxon:q} --out-paired {output.paired:q} "
        "2> {log:q}"
