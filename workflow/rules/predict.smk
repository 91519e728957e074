# Predict: depth for every test image, once per (dataset, model, shard); reused by every later stage.


rule predict:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
    output:
        predictions="results/predictions/{dataset}/{model}/shard-{shard}.npz",
        accuracy="results/predictions/{dataset}/{model}/shard-{shard}.accuracy.csv",
    log:
        "logs/predict/{dataset}_{model}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/predict/{dataset}_{model}_shard-{shard}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=scored_model_options,
        shards=config["shards"],
        device=config["device"],
    shell:
        "python -m depthxai predict-split {params.model:q} --data {input.data:q} "
        "--shard {wildcards.shard:q} --shards {params.shards:q} --device {params.device:q} --threads {threads:q} "
        "--dataset {wildcards.dataset:q} --arch {wildcards.model:q} --out {output.predictions:q} "
        "--out-metrics {output.accuracy:q} 2> {log:q}"
