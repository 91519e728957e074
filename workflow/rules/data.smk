# Data: render the synthetic scenes, or prepare NYU Depth v2 / KITTI from their downloads.
# Every dataset ends in the same layout (results/data/<dataset>/: dataset.json, index.csv, rgb/, depth/).


rule render_synthetic:
    output:
        directory("results/data/{dataset}"),
    log:
        "logs/data/render_{dataset}.log",
    benchmark:
        "results/benchmarks/data/render_{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(SYNTHETIC) or "(?!)",
    conda:
        DATA_ENV
    params:
        setup=dataset_param("setup"),
        n_train=dataset_param("n_train"),
        n_test=dataset_param("n_test"),
        size=dataset_param("size"),
        seed=config["seed"],
    shell:
        "python -m depthxai synthesize --setup {params.setup:q} --name {wildcards.dataset:q} "
        "--n-train {params.n_train:q} --n-test {params.n_test:q} --size {params.size:q} --seed {params.seed:q} "
        "--out {output:q} 2> {log:q}"


rule prepare_nyu:
    input:
        labeled=get_dataset_downloads("labeled"),
        splits=get_dataset_downloads("splits"),
    output:
        directory("results/data/nyu"),
    log:
        "logs/data/prepare_nyu.log",
    benchmark:
        "results/benchmarks/data/prepare_nyu.tsv"
    conda:
        DATA_ENV
    params:
        depth_source=config["datasets"].get("nyu", {}).get("depth_source", "filled"),
        ids=dataset_ids_arg("nyu"),
        train=nyu_train_arg,
    shell:
        "python -m depthxai prepare-nyu --labeled {input.labeled:q} --splits {input.splits:q} "
        "--depth-source {params.depth_source:q} {params.ids:q} {params.train:q} --out {output:q} 2> {log:q}"


rule prepare_kitti:
    input:
        split_file=get_dataset_downloads("split_file"),
        depth=get_dataset_downloads("depth"),
        raw=get_dataset_downloads("raw"),
        # only with datasets.kitti.train (empty otherwise)
        train_split_file=get_dataset_downloads("train_split_file"),
        train_raw=get_dataset_downloads("train_raw"),
    output:
        directory("results/data/kitti"),
    log:
        "logs/data/prepare_kitti.log",
    benchmark:
        "results/benchmarks/data/prepare_kitti.tsv"
    conda:
        DATA_ENV
    params:
        raw_root=KITTI_RAW_ROOT,
        depth_root=KITTI_DEPTH_ROOT,
        ids=dataset_ids_arg("kitti"),
        train=kitti_train_args,
    shell:
        "python -m depthxai prepare-kitti --split-file {input.split_file:q} --raw-root {params.raw_root:q} "
        "--depth-root {params.depth_root:q} {params.ids:q} {params.train:q} --out {output:q} 2> {log:q}"


rule mean_rgb:
    input:
        "results/data/{dataset}",
    output:
        "results/data/{dataset}.mean_rgb.json",
    log:
        "logs/data/mean_rgb_{dataset}.log",
    conda:
        DATA_ENV
    shell:
        "python -m depthxai mean-rgb --data {input:q} --split test --out {output:q} 2> {log:q}"
