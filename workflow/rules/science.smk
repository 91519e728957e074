# Evaluation science: sanity checks with known answers (model randomisation, mosaic localisation, an object
# moved in depth), metric reliability (Krippendorff alpha, Spearman, test-retest ICC over the analysis and the
# training seed) and the paper's claims.


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
    params:
        name=model_name,
        methods=science_methods,
        n_images=config["science"]["sanity"]["n_images"],
        target=TARGET_JSON,
        seed=config["seed"],
        device=config["device"],
        explainer=sanity_explainer_args,
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai sanity --model {params.name:q} --weights {input.weights:q} --data {input.data:q} "
        "--methods {params.methods:q} --mean-rgb {input.mean_rgb:q} --n-images {params.n_images:q} "
        "--target {params.target:q} {params.explainer:q} --seed {params.seed:q} --device {params.device:q} "
        "--threads {threads:q} --dataset {wildcards.dataset:q} --arch {wildcards.model:q} --out {output:q} 2> {log:q}"


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
        fidelity=config["evaluation"]["fidelity"]["measure"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    conda:
        TORCH_ENV
    shell:
        "python -m depthxai localisation --model {params.name:q} --weights {input.weights:q} --data {input.data:q} "
        "--methods {params.methods:q} --mean-rgb {input.mean_rgb:q} --n-mosaics {params.n_mosaics:q} "
        "--fidelity-measure {params.fidelity:q} "
        "--seed {params.seed:q} --device {params.device:q} --threads {threads:q} --dataset {wildcards.dataset:q} "
        "--arch {wildcards.model:q} --out {output:q} 2> {log:q}"


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
        fidelity=config["evaluation"]["fidelity"]["measure"],
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
        "python -m depthxai object-shift --model {params.name:q} --weights {input.weights:q} "
        "--methods {params.methods:q} --mean-rgb {input.mean_rgb:q} --setup {params.setup:q} --n-pairs {params.n_pairs:q} "
        "--fidelity-measure {params.fidelity:q} "
        "--shift-m {params.shift_m:q} --seed {params.seed:q} --device {params.device:q} --threads {threads:q} "
        "--dataset {wildcards.dataset:q} --arch {wildcards.model:q} --out {output:q} 2> {log:q}"


# Test-retest, analysis seed: the stochastic methods' maps again with seed + r (the others are reused), and every
# method evaluated again with seed + r (perturbation and Infidelity noise). Copies of the main rules, so that the
# repeats run exactly the commands of the main run; a copy names only the params it changes (Snakemake >= 9 keeps
# the others).
use rule attribute as attribute_repeat with:
    output:
        "results/science/retest/{dataset}/{model}/{method}/repeat-{repeat}/shard-{shard}.npz",
    log:
        "logs/science/attribute_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/attribute_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"
    params:
        seed=repeat_seed,
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
    params:
        seed=repeat_seed,
        retest_labels=retest_labels("analysis_seed"),


# Test-retest, training seed: each model trained in the DAG, and its explainer, trained again with seed + r; then
# predicted, attributed and evaluated by copies of the main rules with the analysis seed unchanged, so that only
# the training seed differs from the main run.
use rule train_model as retrain_model with:
    output:
        weights="results/science/retrain/{dataset}/{model}/repeat-{repeat}/weights.pt",
        metrics="results/science/retrain/{dataset}/{model}/repeat-{repeat}/train_metrics.json",
    log:
        "logs/science/retrain_{dataset}_{model}_repeat-{repeat}.log",
    benchmark:
        "results/benchmarks/science/retrain_{dataset}_{model}_repeat-{repeat}.tsv"
    params:
        train=retrain_train_params,


use rule train_explainer as retrain_explainer with:
    input:
        data="results/data/{dataset}",
        weights="results/science/retrain/{dataset}/{model}/repeat-{repeat}/weights.pt",
    output:
        weights="results/science/retrain/{dataset}/{model}/repeat-{repeat}/explainer.pt",
        metrics="results/science/retrain/{dataset}/{model}/repeat-{repeat}/explainer_metrics.json",
    log:
        "logs/science/retrain_explainer_{dataset}_{model}_repeat-{repeat}.log",
    benchmark:
        "results/benchmarks/science/retrain_explainer_{dataset}_{model}_repeat-{repeat}.tsv"
    params:
        seed=repeat_seed,


use rule predict as predict_retrained with:
    input:
        data="results/data/{dataset}",
        weights="results/science/retrain/{dataset}/{model}/repeat-{repeat}/weights.pt",
    output:
        predictions="results/science/retrain/{dataset}/{model}/repeat-{repeat}/predictions/shard-{shard}.npz",
        accuracy="results/science/retrain/{dataset}/{model}/repeat-{repeat}/predictions/shard-{shard}.accuracy.csv",
    log:
        "logs/science/predict_retrained_{dataset}_{model}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/predict_retrained_{dataset}_{model}_repeat-{repeat}_shard-{shard}.tsv"


use rule attribute as attribute_retrained with:
    input:
        data="results/data/{dataset}",
        weights="results/science/retrain/{dataset}/{model}/repeat-{repeat}/weights.pt",
        predictions="results/science/retrain/{dataset}/{model}/repeat-{repeat}/predictions/shard-{shard}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
        method_inputs=get_retrain_method_inputs,
    output:
        "results/science/retrain/{dataset}/{model}/repeat-{repeat}/attributions/{method}/shard-{shard}.npz",
    log:
        "logs/science/attribute_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/attribute_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"
    params:
        method_params=retrain_method_params,


use rule smoothness as smoothness_retrained with:
    input:
        get_retrain_smoothness_maps,
    output:
        "results/science/retrain/{dataset}/{model}/repeat-{repeat}/attributions/smoothness.json",
    log:
        "logs/science/smoothness_retrained_{dataset}_{model}_repeat-{repeat}.log",


use rule evaluate as evaluate_retrained with:
    input:
        data="results/data/{dataset}",
        weights="results/science/retrain/{dataset}/{model}/repeat-{repeat}/weights.pt",
        predictions="results/science/retrain/{dataset}/{model}/repeat-{repeat}/predictions/shard-{shard}.npz",
        attributions="results/science/retrain/{dataset}/{model}/repeat-{repeat}/attributions/{method}/shard-{shard}.npz",
        mean_rgb="results/data/{dataset}.mean_rgb.json",
    output:
        scores="results/science/retrain/{dataset}/{model}/repeat-{repeat}/evaluation/{method}/shard-{shard}.scores.csv",
        curves="results/science/retrain/{dataset}/{model}/repeat-{repeat}/evaluation/{method}/shard-{shard}.curves.csv",
    log:
        "logs/science/evaluate_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.log",
    benchmark:
        "results/benchmarks/science/evaluate_retrained_{dataset}_{model}_{method}_repeat-{repeat}_shard-{shard}.tsv"
    params:
        retest_labels=retest_labels("training_seed"),


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
        "python -m depthxai merge --out {output:q} {input:q} 2> {log:q}"


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
        methods=json.dumps(config["science"]["reliability"]["methods"]),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai reliability --scores {input.scores:q} --retest {input.retest:q} --methods {params.methods:q} "
        "--out-dir {params.out_dir:q} 2> {log:q}"


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
        claims=json_param("claims"),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai claims --scores {input:q} --claims {params.claims:q} --alpha {params.alpha:q} "
        "--out-md {output.md:q} --out-csv {output.csv:q} 2> {log:q}"


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
        formats=figure_formats(),
    conda:
        "../../envs/stats.yaml"
    shell:
        "python -m depthxai science-report --sanity {input.sanity:q} --localisation {input.localisation:q} "
        "--object-shift {input.object_shift:q} --scores {input.scores:q} --spearman {input.spearman:q} "
        "--alpha-table {input.alpha:q} --icc {input.icc:q} --formats {params.formats:q} --out-dir results/figures "
        "--tables-dir results/tables 2> {log:q}"
