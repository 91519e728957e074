# Downloads: every file of the paper preset, verified by its hash, resumable, or copied from a local mirror
# (config `mirror` or $DEPTHXAI_MIRROR). Files land in <resources_dir>/downloads/<filename>; archives are
# extracted safely into <resources_dir>/downloads/<extract_dir>/ and marked by a flag file.
# Downloads stay local on a cluster (localrules): compute nodes often have no internet.


localrules:
    download_file,
    download_archive,


rule download_file:
    output:
        f"{config['resources_dir']}/downloads/{{filename}}",
    log:
        "logs/download/{filename}.log",
    params:
        spec=download_spec_by_filename,
        mirror=mirror_arg,
        dest=output_dir,
    wildcard_constraints:
        filename="|".join(re.escape(f) for f in FILE_DOWNLOADS) or "(?!)",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m depthxai fetch --spec {params.spec:q} --dest-dir {params.dest:q} {params.mirror:q} 2> {log:q}"


rule download_archive:
    output:
        f"{config['resources_dir']}/downloads/{{key}}.extracted",
    log:
        "logs/download/{key}.log",
    params:
        spec=download_spec_by_key,
        mirror=mirror_arg,
        dest=output_dir,
    wildcard_constraints:
        key="|".join(re.escape(k) for k in ARCHIVE_DOWNLOADS) or "(?!)",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m depthxai fetch --spec {params.spec:q} --dest-dir {params.dest:q} {params.mirror:q} "
        "--flag {output:q} 2> {log:q}"


rule prepare_nyu:
    input:
        labeled=dataset_download("labeled"),
        splits=dataset_download("splits"),
    output:
        directory("results/data/nyu"),
    log:
        "logs/data/prepare_nyu.log",
    benchmark:
        "results/benchmarks/data/prepare_nyu.tsv"
    params:
        depth_source=config["datasets"].get("nyu", {}).get("depth_source", "filled"),
        ids=dataset_ids_arg("nyu"),
        train=nyu_train_arg,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m depthxai prepare-nyu --labeled {input.labeled:q} --splits {input.splits:q} "
        "--depth-source {params.depth_source:q} {params.ids:q} {params.train:q} --out {output:q} 2> {log:q}"


rule prepare_kitti:
    input:
        split_file=dataset_download("split_file"),
        depth=dataset_download("depth"),
        raw=dataset_download("raw"),
        # only with datasets.kitti.train (empty otherwise)
        train_split_file=dataset_download("train_split_file"),
        train_raw=dataset_download("train_raw"),
    output:
        directory("results/data/kitti"),
    log:
        "logs/data/prepare_kitti.log",
    benchmark:
        "results/benchmarks/data/prepare_kitti.tsv"
    params:
        raw_root=archive_root("kitti", "raw"),
        depth_root=archive_root("kitti", "depth"),
        ids=dataset_ids_arg("kitti"),
        train=kitti_train_args,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m depthxai prepare-kitti --split-file {input.split_file:q} --raw-root {params.raw_root:q} "
        "--depth-root {params.depth_root:q} {params.ids:q} {params.train:q} --out {output:q} 2> {log:q}"
