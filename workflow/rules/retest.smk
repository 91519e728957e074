# Test-retest: the main rules again with one seed changed, as copies (use rule ... with), so that a repeat runs
# exactly the main run's commands; where a copy writes decides what it repeats (common.smk: retest_factor), which
# sets its seeds and labels. Then the metrics' reliability: Krippendorff's alpha, Spearman, ICC per factor.

# Analysis seed: the stochastic methods' maps again with seed + r (the others are reused), and every method
# evaluated again with seed + r (perturbation and Infidelity noise).


use rule attribute as attribute_repeat with:
    output:
        "results/science/retest/{dataset}/{model}/{method}/repeat-{repeat}/shard-{shard}.npz",
    log:
        "logs/science/attribute_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/attribute_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"
    wildcard_constraints:
        method="|".join(STOCHASTIC_METHODS) or "(?!)",


use rule evaluate as evaluate_repeat with:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        predictions="results/predictions/{dataset}/{model}/shard-{shard}.npz",
        attributions=get_repeat_attributions,
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        scores="results/science/retest/{dataset}/{model}/{method}/repeat-{repeat}/shard-{shard}.scores.csv",
        curves="results/science/retest/{dataset}/{model}/{method}/repeat-{repeat}/shard-{shard}.curves.csv",
    log:
        "logs/science/evaluate_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/evaluate_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"


# Training seed: each model trained in the DAG, and its explainer, trained again with seed + r; then predicted,
# attributed and evaluated with the analysis seed unchanged, all under RETRAIN (one repeat's folder).


use rule train_model as retrain_model with:
    output:
        weights=f"{RETRAIN}/weights.pt",
        metrics=f"{RETRAIN}/train_metrics.json",
    log:
        "logs/science/retrain_{dataset}_{model}_repeat-{repeat}.log",
    benchmark:
        "results/benchmarks/science/retrain_{dataset}_{model}_repeat-{repeat}.tsv"


use rule train_explainer as retrain_explainer with:
    input:
        data="results/data/{dataset}",
        weights=f"{RETRAIN}/weights.pt",
    output:
        weights=f"{RETRAIN}/explainer.pt",
        metrics=f"{RETRAIN}/explainer_metrics.json",
    log:
        "logs/science/retrain_explainer_{dataset}_{model}_repeat-{repeat}.log",
    benchmark:
        "results/benchmarks/science/retrain_explainer_{dataset}_{model}_repeat-{repeat}.tsv"


use rule predict as predict_retrained with:
    input:
        data="results/data/{dataset}",
        weights=f"{RETRAIN}/weights.pt",
    output:
        predictions=f"{RETRAIN}/predictions/shard-{{shard}}.npz",
        accuracy=f"{RETRAIN}/predictions/shard-{{shard}}.accuracy.csv",
    log:
        "logs/science/predict_retrained_{dataset}_{model}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/predict_retrained_{dataset}_{model}_repeat-{repeat}_shard-{shard}.tsv"


use rule attribute as attribute_retrained with:
    input:
        data="results/data/{dataset}",
        weights=f"{RETRAIN}/weights.pt",
        predictions=f"{RETRAIN}/predictions/shard-{{shard}}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
        method_inputs=get_retrain_method_inputs,
    output:
        f"{RETRAIN}/attributions/{{method}}/shard-{{shard}}.npz",
    log:
        "logs/science/attribute_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/attribute_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"


use rule smoothness as smoothness_retrained with:
    input:
        get_retrain_smoothness_maps,
    output:
        f"{RETRAIN}/attributions/smoothness.json",
    log:
        "logs/science/smoothness_retrained_{dataset}_{model}_repeat-{repeat}.log",


use rule evaluate as evaluate_retrained with:
    input:
        data="results/data/{dataset}",
        weights=f"{RETRAIN}/weights.pt",
        predictions=f"{RETRAIN}/predictions/shard-{{shard}}.npz",
        attributions=f"{RETRAIN}/attributions/{{method}}/shard-{{shard}}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        scores=f"{RETRAIN}/evaluation/{{method}}/shard-{{shard}}.scores.csv",
        curves=f"{RETRAIN}/evaluation/{{method}}/shard-{{shard}}.curves.csv",
    log:
        "logs/science/evaluate_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/evaluate_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"


rule merge_retest:
    input:
        RETEST_SCORE_FILES,
    output:
        "results/science/retest.csv",
    log:
        "logs/science/merge_retest.log",
    conda:
        STATS_ENV
    shell:
        "python -m depthxai merge --out {output:q} {input:q} 2> {log:q}"


rule reliability:
    input:
        scores="results/evaluation/scores.csv",
        retest=RETEST_TABLE,
    output:
        multiext("results/science/reliability/", "alpha.csv", "spearman.csv", "cross_metric.csv", "icc.csv"),
    log:
        "logs/science/reliability.log",
    conda:
        STATS_ENV
    params:
        out_dir=output_dir,
        methods=json.dumps(config["science"]["reliability"]["methods"]),
    shell:
        "python -m depthxai reliability --scores {input.scores:q} --retest {input.retest:q} "
        "--methods {params.methods:q} --out-dir {params.out_dir:q} 2> {log:q}"
