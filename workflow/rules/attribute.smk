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
        "python -m depthxai attribute --model {params.name} --weights {input.weights} --data {input.data} "
        "--predictions {input.predictions} --method {wildcards.method} --params '{params.method_params}' "
        "--target '{params.target}' --channel-reduction {params.reduction} --mean-rgb {input.mean_rgb} "
        "--seed {params.seed} --device {params.device} --threads {threads} --out {output} 2> {log}"
