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
    params:
        name=model_name,
        explainer=json.dumps(config["methods"].get("explainer", {}), sort_keys=True),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai train-explainer --model {params.name} --weights {input.weights} --data {input.data} "
        "--explainer '{params.explainer}' --seed {params.seed} --device {params.device} --threads {threads} "
        "--out-weights {output.weights} --out-metrics {output.metrics} 2> {log}"
