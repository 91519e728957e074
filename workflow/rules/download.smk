# Downloads: every file of the paper preset, verified by its hash, resumable, or copied from a local mirror
# (config `mirror` or $DEPTHXAI_MIRROR). Files land in <resources_dir>/downloads/<filename>; archives are
# extracted safely into <resources_dir>/downloads/<extract_dir>/ and marked by a flag file.
# Downloads stay local on a cluster (localrules): compute nodes often have no internet.


localrules:
    download_file,
    download_archive,


rule download_file:
    output:
        f"{DOWNLOADS_DIR}/{{filename}}",
    log:
        "logs/download/{filename}.log",
    wildcard_constraints:
        filename="|".join(re.escape(f) for f in FILE_DOWNLOADS) or "(?!)",
    conda:
        DATA_ENV
    params:
        spec=download_spec_by_filename,
        mirror=mirror_arg,
        dest=output_dir,
    shell:
        "python -m depthxai fetch --spec {params.spec:q} --dest-dir {params.dest:q} {params.mirror:q} 2> {log:q}"


rule download_archive:
    output:
        f"{DOWNLOADS_DIR}/{{key}}.extracted",
    log:
        "logs/download/{key}.log",
    wildcard_constraints:
        key="|".join(re.escape(k) for k in ARCHIVE_DOWNLOADS) or "(?!)",
    conda:
        DATA_ENV
    params:
        spec=download_spec_by_key,
        mirror=mirror_arg,
        dest=output_dir,
    shell:
        "python -m depthxai fetch --spec {params.spec:q} --dest-dir {params.dest:q} {params.mirror:q} "
        "--flag {output:q} 2> {log:q}"
