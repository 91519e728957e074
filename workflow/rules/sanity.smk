# Sanity checks with known answers: cascading model randomisation (with the explainer retrained against the fully
# randomised model), mosaic localisation, and an object moved in depth (synthetic scenes only).


rule sanity:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        mean_rgb="results/data/{dataset}.mean_rgb.json",
        explainer=get_sanity_explainer,
    output:
        "results/science/{dataset}/{model}/sanity.csv",
    log:
        "logs/science/sanity_{dataset}_{model}.log",
    benchmark:
        "results/benchmarks/science/sanity_{dataset}_{model}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=model_options,
        methods=SCIENCE_METHODS_JSON,
        n_images=config["science"]["sanity"]["n_images"],
        target=TARGET_JSON,
        seed=config["seed"],
        device=config["device"],
        explainer=sanity_explainer_args,
    shell:
        "python -m depthxai sanity {params.model:q} --data {input.data:q} "
        "--methods {params.methods:q} --mean-rgb {input.mean_rgb:q} --n-images {params.n_images:q} "
        "--target {params.target:q} {params.explainer:q} --seed {params.seed:q} --device {params.device:q} "
        "--threads {threads:q} --dataset {wildcards.dataset:q} --arch {wildcards.model:q} --out {output:q} "
        "2> {log:q}"


rule localisation:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        "results/science/{dataset}/{model}/localisation.csv",
    log:
        "logs/science/localisation_{dataset}_{model}.log",
    benchmark:
        "results/benchmarks/science/localisation_{dataset}_{model}.tsv"
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=model_options,
        methods=SCIENCE_METHODS_JSON,
        n_mosaics=config["science"]["localisation"]["n_mosaics"],
        fidelity=config["evaluation"]["fidelity"]["measure"],
        seed=config["seed"],
        device=config["device"],
    shell:
        "python -m depthxai localisation {params.model:q} --data {input.data:q} "
        "--methods {params.methods:q} --mean-rgb {input.mean_rgb:q} --n-mosaics {params.n_mosaics:q} "
        "--fidelity-measure {params.fidelity:q} --seed {params.seed:q} --device {params.device:q} "
        "--threads {threads:q} --dataset {wildcards.dataset:q} --arch {wildcards.model:q} --out {output:q} "
        "2> {log:q}"


rule object_shift:
    input:
        weights=get_weights,
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        "results/science/{dataset}/{model}/object_shift.csv",
    log:
        "logs/science/object_shift_{dataset}_{model}.log",
    benchmark:
        "results/benchmarks/science/object_shift_{dataset}_{model}.tsv"
    wildcard_constraints:
        dataset="|".join(SYNTHETIC) or "(?!)",
    conda:
        TORCH_ENV
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=model_options,
        methods=SCIENCE_METHODS_JSON,
        setup=dataset_param("setup"),
        n_pairs=config["science"]["object_shift"]["n_pairs"],
        shift_m=config["science"]["object_shift"]["shift_m"],
        fidelity=config["evaluation"]["fidelity"]["measure"],
        seed=config["seed"],
        device=config["device"],
    shell:
        "python -m depthxai object-shift {params.model:q} "
        "--methods {params.methods:q} --mean-rgb {input.mean_rgb:q} --setup {params.setup:q} "
        "--n-pairs {params.n_pairs:q} --fidelity-measure {params.fidelity:q} --shift-m {params.shift_m:q} "
        "--seed {params.seed:q} --device {params.device:q} --threads {threads:q} --dataset {wildcards.dataset:q} "
        "--arch {wildcards.model:q} --out {output:q} 2> {log:q}"
