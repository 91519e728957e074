# Evaluate: perturbation curves, Attribution Fidelity and Infidelity per map; merged into tidy tables.


rule evaluate:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        predictions="results/predictions/{dataset}/{model}/shard-{shard}.npz",
        attributions="results/attributions/{dataset}/{model}/{method}/shard-{shard}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        scores="results/evaluation/{dataset}/{model}/{method}/shard-{shard}.scores.csv",
        curves="results/evaluation/{dataset}/{model}/{method}/shard-{shard}.curves.csv",
    log:
        "logs/evaluate/{dataset}_{model}_{method}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}_{model}_{method}_shard-{shard}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=scored_model_options,
        evaluation=EVALUATION_JSON,
        target=TARGET_JSON,
        seed=analysis_seed,
        device=config["device"],
        labels=retest_labels,
    shell:
        "python -m depthxai evaluate {params.model:q} --data {input.data:q} "
        "--predictions {input.predictions:q} --attributions {input.attributions:q} "
        "--evaluation {params.evaluation:q} --target {params.target:q} --mean-rgb {input.mean_rgb:q} "
        "--seed {params.seed:q} --dataset {wildcards.dataset:q} --arch {wildcards.model:q} {params.labels:q} "
        "--device {params.device:q} --threads {threads:q} --out-scores {output.scores:q} "
        "--out-curves {output.curves:q} 2> {log:q}"


rule merge_scores:
    input:
        SCORE_FILES,
    output:
        "results/evaluation/scores.csv",
    log:
        "logs/evaluate/merge_scores.log",
    conda:
        STATS_ENV
    shell:
        "python -m depthxai merge --out {output:q} {input:q} 2> {log:q}"


rule merge_curves:
    input:
        CURVE_FILES,
    output:
        "results/evaluation/curves.csv",
    log:
        "logs/evaluate/merge_curves.log",
    conda:
        STATS_ENV
    shell:
        "python -m depthxai merge --out {output:q} {input:q} 2> {log:q}"


rule merge_accuracy:
    input:
        ACCURACY_FILES,
    output:
        "results/evaluation/accuracy.csv",
    log:
        "logs/evaluate/merge_accuracy.log",
    conda:
        STATS_ENV
    shell:
        "python -m depthxai merge --out {output:q} {input:q} 2> {log:q}"
