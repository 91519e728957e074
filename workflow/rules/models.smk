# Models: train the embedded models on a synthetic train split (official checkpoints come from downloads),
# then write a model card with the accuracy on the test split.


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
    params:
        name=model_name,
        train=train_params,
    threads: config["threads"]
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai train --model {params.name} --data {input.data} --train '{params.train}' --threads {threads} "
        "--out-weights {output.weights} --out-metrics {output.metrics} 2> {log}"


rule model_card:
    input:
        weights=get_weights,
        accuracy=get_model_accuracy,
    output:
        "results/models/{dataset}/{model}/card.json",
    log:
        "logs/models/card_{dataset}_{model}.log",
    params:
        name=model_name,
        source=weight_source,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai model-card --model {params.name} --weights {input.weights} --weights-source {params.source} "
        "--out {output} {input.accuracy} 2> {log}"
