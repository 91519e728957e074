# Models: train the embedded models on a synthetic train split (official checkpoints come from downloads), then
# write a model card with the accuracy on the test split.


rule train_model:
    input:
        data="results/data/{dataset}",
    output:
        weights="results/models/{dataset}/{model}/weights.pt",
        metrics="results/models/{dataset}/{model}/train_metrics.json",
    log:
        "logs/models/train_{dataset}_{model}.log",
    benchmark:
        "results/benchmarks/models/train_{dataset}_{model}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    params:
        name=model_name,
        train=train_params,
    shell:
        "python -m depthxai train --model {params.name:q} --data {input.data:q} --train {params.train:q} "
        "--threads {threads:q} --out-weights {output.weights:q} --out-metrics {output.metrics:q} 2> {log:q}"


rule model_card:
    input:
        weights=get_weights,
        accuracy=get_model_accuracy,
    output:
        "results/models/{dataset}/{model}/card.json",
    log:
        "logs/models/card_{dataset}_{model}.log",
    conda:
        TORCH_ENV
    params:
        model=scored_model_options,
        source=weight_source,
    shell:
        "python -m depthxai model-card {params.model:q} "
        "--weights-source {params.source:q} --out {output:q} {input.accuracy:q} 2> {log:q}"
