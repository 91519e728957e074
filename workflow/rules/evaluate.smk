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
    params:
        name=model_name,
        evaluation=json_param("evaluation"),
        target=TARGET_JSON,
        seed=config["seed"],
        device=config["device"],
        retest_labels="",  # the test-retest copies of this rule label their rows (workflow/rules/science.smk)
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai evaluate --model {params.name} --weights {input.weights} --data {input.data} "
        "--predictions {input.predictions} --attributions {input.attributions} --evaluation '{params.evaluation}' "
        "--target '{params.target}' --mean-rgb {input.mean_rgb} --seed {params.seed} --dataset {wildcards.dataset} "
        "--arch {wildcards.model} {params.retest_labels} --device {params.device} --threads {threads} "
        "--out-scores {output.scores} --out-curves {output.curves} 2> {log}"


rule merge_scores:
    input:
        get_scores,
    output:
        "results/evaluation/scores.csv",
    log:
        "logs/evaluate/merge_scores.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai merge --out {output} {input} 2> {log}"


rule merge_curves:
    input:
        get_curves,
    output:
        "results/evaluation/curves.csv",
    log:
        "logs/evaluate/merge_curves.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai merge --out {output} {input} 2> {log}"


rule merge_accuracy:
    input:
        get_accuracy,
    output:
        "results/evaluation/accuracy.csv",
    log:
        "logs/evaluate/merge_accuracy.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai merge --out {output} {input} 2> {log}"
