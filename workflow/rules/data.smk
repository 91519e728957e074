# Data: render the synthetic scenes, or prepare NYU Depth v2 / KITTI from their downloads.
# Every dataset ends in the same layout (results/data/<dataset>/: dataset.json, index.csv, rgb/, depth/).


rule render_synthetic:
    output:
        directory("results/data/{dataset}"),
    log:
        "logs/data/render_{dataset}.log",
    benchmark:
        "results/benchmarks/data/render_{dataset}.tsv"
    params:
        setup=dataset_param("setup"),
        n_train=dataset_param("n_train"),
        n_test=dataset_param("n_test"),
        size=dataset_param("size"),
        seed=config["seed"],
    wildcard_constraints:
        dataset="|".join(SYNTHETIC) or "(?!)",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m depthxai synthesize --setup {params.setup:q} --name {wildcards.dataset:q} --n-train {params.n_train:q} "
        "--n-test {params.n_test:q} --size {params.size:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


rule mean_rgb:
    input:
        "results/data/{dataset}",
    output:
        "results/data/{dataset}.mean_rgb.json",
    log:
        "logs/data/mean_rgb_{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m depthxai mean-rgb --data {input:q} --split test --out {output:q} 2> {log:q}"
