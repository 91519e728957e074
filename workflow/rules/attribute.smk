# Attribute: the learned explainer trained against each model; one map per test image for every (dataset, model,
# method, shard); the correlation length of the methods' maps, which the smoothness-matched baseline takes.


rule train_explainer:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
    output:
        weights="results/models/{dataset}/{model}/explainer.pt",
        metrics="results/models/{dataset}/{model}/explainer_metrics.json",
    log:
        "logs/models/train_explainer_{dataset}_{model}.log",
    benchmark:
        "results/benchmarks/models/train_explainer_{dataset}_{model}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=model_options,
        explainer=json.dumps(config["methods"].get("explainer", {}), sort_keys=True),
        seed=training_seed,
        device=config["device"],
    shell:
        "python -m depthxai train-explainer {params.model:q} "
        "--data {input.data:q} --explainer {params.explainer:q} --seed {params.seed:q} --device {params.device:q} "
        "--threads {threads:q} --out-weights {output.weights:q} --out-metrics {output.metrics:q} 2> {log:q}"


rule attribute:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        predictions="results/predictions/{dataset}/{model}/shard-{shard}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
        method_inputs=get_method_inputs,
    output:
        "results/attributions/{dataset}/{model}/{method}/shard-{shard}.npz",
    log:
        "logs/attribute/{dataset}_{model}_{method}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/attribute/{dataset}_{model}_{method}_shard-{shard}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=model_options,
        method=method_options,
        method_params=method_params,
        target=TARGET_JSON,
        reduction=config["attribution"]["channel_reduction"],
        seed=analysis_seed,
        device=config["device"],
    shell:
        "python -m depthxai attribute {params.model:q} --data {input.data:q} "
        "--predictions {input.predictions:q} {params.method:q} --params {params.method_params:q} "
        "--target {params.target:q} --channel-reduction {params.reduction:q} --mean-rgb {input.mean_rgb:q} "
        "--seed {params.seed:q} --device {params.device:q} --threads {threads:q} --out {output:q} 2> {log:q}"


rule smoothness:
    input:
        get_smoothness_maps,
    output:
        "results/attributions/{dataset}/{model}/smoothness.json",
    log:
        "logs/attribute/smoothness_{dataset}_{model}.log",
    conda:
        TORCH_ENV
    params:
        match=SMOOTHNESS_METHODS,
        ranking=config["evaluation"]["ranking"],
    shell:
        "python -m depthxai smoothness --match-methods {params.match:q} --ranking {params.ranking:q} "
        "--out {output:q} {input:q} 2> {log:q}"
