# Evaluation science: sanity checks with known answers (model randomisation, mosaic localisation, an object
# moved in depth), metric reliability (Krippendorff alpha, Spearman, test-retest ICC) and the paper's claims.


rule sanity:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        "results/science/{dataset}/{model}/sanity.csv",
    log:
        "logs/science/sanity_{dataset}_{model}.log",
    benchmark:
        "results/benchmarks/science/sanity_{dataset}_{model}.tsv"
    params:
        name=model_name,
        methods=science_methods,
        n_images=config["science"]["sanity"]["n_images"],
        target=TARGET_JSON,
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai sanity --model {params.name} --weights {input.weights} --data {input.data} "
        "--methods '{params.methods}' --mean-rgb {input.mean_rgb} --n-images {params.n_images} "
        "--target '{params.target}' --seed {params.seed} --device {params.device} --threads {threads} "
        "--dataset {wildcards.dataset} --arch {wildcards.model} --out {output} 2> {log}"


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
    params:
        name=model_name,
        methods=science_methods,
        n_mosaics=config["science"]["localisation"]["n_mosaics"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai localisation --model {params.name} --weights {input.weights} --data {input.data} "
        "--methods '{params.methods}' --mean-rgb {input.mean_rgb} --n-mosaics {params.n_mosaics} "
        "--seed {params.seed} --device {params.device} --threads {threads} --dataset {wildcards.dataset} "
        "--arch {wildcards.model} --out {output} 2> {log}"


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
    params:
        name=model_name,
        methods=science_methods,
        setup=dataset_param("setup"),
        n_pairs=config["science"]["object_shift"]["n_pairs"],
        shift_m=config["science"]["object_shift"]["shift_m"],
        seed=config["seed"],
        device=config["device"],
    wildcard_constraints:
        dataset="|".join(SYNTHETIC) or "(?!)",
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai object-shift --model {params.name} --weights {input.weights} "
        "--methods '{params.methods}' --mean-rgb {input.mean_rgb} --setup {params.setup} --n-pairs {params.n_pairs} "
        "--shift-m {params.shift_m} --seed {params.seed} --device {params.device} --threads {threads} "
        "--dataset {wildcards.dataset} --arch {wildcards.model} --out {output} 2> {log}"


rule attribute_repeat:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        predictions="results/predictions/{dataset}/{model}/shard-{shard}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        "results/science/retest/{dataset}/{model}/{method}/repeat-{repeat}/shard-{shard}.npz",
    log:
        "logs/science/attribute_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    params:
        name=model_name,
        method_params=method_params,
        target=TARGET_JSON,
        reduction=config["attribution"]["channel_reduction"],
        seed=repeat_seed,
        device=config["device"],
    wildcard_constraints:
        method="|".join(STOCHASTIC_METHODS) or "(?!)",
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


rule evaluate_repeat:
    input:
        data="results/data/{dataset}",
        weights=get_weights,
        predictions="results/predictions/{dataset}/{model}/shard-{shard}.npz",
        attributions=get_repeat_attributions,
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        "results/science/retest/{dataset}/{model}/{method}/repeat-{repeat}/shard-{shard}.scores.csv",
    log:
        "logs/science/evaluate_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    params:
        name=model_name,
        evaluation=json_param("evaluation"),
        target=TARGET_JSON,
        seed=repeat_seed,
        device=config["device"],
        curves=repeat_curves_path,
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai evaluate --model {params.name} --weights {input.weights} --data {input.data} "
        "--predictions {input.predictions} --attributions {input.attributions} --evaluation '{params.evaluation}' "
        "--target '{params.target}' --mean-rgb {input.mean_rgb} --seed {params.seed} --dataset {wildcards.dataset} "
        "--arch {wildcards.model} --repeat {wildcards.repeat} --device {params.device} --threads {threads} "
        "--out-scores {output} --out-curves {params.curves} 2> {log}"


rule merge_retest:
    input:
        get_retest_scores,
    output:
        "results/science/retest.csv",
    log:
        "logs/science/merge_retest.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai merge --out {output} {input} 2> {log}"


rule reliability:
    input:
        scores="results/evaluation/scores.csv",
        retest=get_retest_table,
    output:
        multiext("results/science/reliability/", "alpha.csv", "spearman.csv", "cross_metric.csv", "icc.csv"),
    log:
        "logs/science/reliability.log",
    params:
        out_dir=output_dir,
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai reliability --scores {input.scores} --retest {input.retest} --out-dir {params.out_dir} "
        "2> {log}"


rule claims:
    input:
        "results/evaluation/scores.csv",
    output:
        md=report("results/claims.md", caption="../report/claims.rst", category="Claims"),
        csv="results/claims.csv",
    log:
        "logs/science/claims.log",
    params:
        alpha=config["stats"]["alpha"],
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai claims --scores {input} --alpha {params.alpha} --out-md {output.md} --out-csv {output.csv} "
        "2> {log}"


rule science_report:
    input:
        sanity=expand("results/science/{pair}/sanity.csv", pair=PAIR_PATHS),
        localisation=expand("results/science/{pair}/localisation.csv", pair=PAIR_PATHS),
        object_shift=get_object_shift,
        scores="results/evaluation/scores.csv",
        spearman="results/science/reliability/spearman.csv",
        alpha="results/science/reliability/alpha.csv",
        icc="results/science/reliability/icc.csv",
    output:
        report(
            expand("results/figures/{fig}.{ext}", fig=["randomisation", "violins", "method_correlation"],
                   ext=figure_formats()),
            caption="../report/science.rst",
            category="Evaluation science",
        ),
        report(
            expand("results/tables/{table}.{ext}", table=["randomisation", "localisation", "reliability"],
                   ext=["csv", "md", "tex"]),
            caption="../report/science_tables.rst",
            category="Evaluation science",
        ),
    log:
        "logs/science/science_report.log",
    params:
        formats=" ".join(figure_formats()),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai science-report --sanity {input.sanity} --localisation {input.localisation} "
        "--object-shift {input.object_shift} --scores {input.scores} --spearman {input.spearman} "
        "--alpha-table {input.alpha} --icc {input.icc} --formats {params.formats} --out-dir results/figures "
        "--tables-dir results/tables 2> {log}"
