# Attribute: one map per test image for every (dataset, model, method, shard).


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
    params:
        name=model_name,
        method_params=method_params,
        target=TARGET_JSON,
        reduction=config["attribution"]["channel_reduction"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai attribute --model {params.name:q} --weights {input.weights:q} --data {input.data:q} "
        "--predictions {input.predictions:q} --method {wildcards.method:q} --params {params.method_params:q} "
        "--target {params.target:q} --channel-reduction {params.reduction:q} --mean-rgb {input.mean_rgb:q} "
        "--seed {params.seed:q} --device {params.device:q} --threads {threads:q} --out {output:q} 2> {log:q}"


rule smoothness:
    input:
        get_smoothness_maps,
    output:
        "results/attributions/{dataset}/{model}/smoothness.json",
    log:
        "logs/attribute/smoothness_{dataset}_{model}.log",
    params:
        match=SMOOTHNESS_METHODS,
        ranking=config["evaluation"]["ranking"],
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai smoothness --match-methods {params.match:q} --ranking {params.ranking:q} --out {output:q} "
        "{input:q} 2> {log:q}"
