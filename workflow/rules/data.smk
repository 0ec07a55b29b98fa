# Datasets: check the files under data_root and write the protocol manifest
# (train.csv = unlabelled adaptation split, test.csv = scored split, classes.json,
# templates.json) and dataset.json (title, label, K, split sizes: what the report shows).
# A missing, incomplete or corrupt dataset stops here with a message naming what is
# missing and how to get it. Nothing downloads unless prepare.download.


rule prepare_dataset:
    output:
        train=f"{RESULTS}/data/{{dataset}}/train.csv",
        test=f"{RESULTS}/data/{{dataset}}/test.csv",
        classes=f"{RESULTS}/data/{{dataset}}/classes.json",
        templates=f"{RESULTS}/data/{{dataset}}/templates.json",
        info=f"{RESULTS}/data/{{dataset}}/dataset.json",
    log:
        f"logs/{RUN}/prepare_dataset/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        root=get_dataset_root,
        out=lambda wildcards: grid.manifest_dir(config, wildcards.dataset),
        custom=get_custom_entry,
        flags=" ".join(
            [
                "" if config["prepare"]["verify"] else "--no-verify",
                "" if config["prepare"]["check_counts"] else "--no-check-counts",
                "--download" if config["prepare"]["download"] else "",
            ]
        ),
    threads: 2
    resources:
        mem_mb=grid.job_mem_mb(config, "prepare_dataset"),
        runtime=grid.job_minutes(config, "prepare_dataset"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} prepare --dataset {wildcards.dataset} --root {params.root:q} "
        "--out {params.out:q} --custom {params.custom:q} {params.flags} > {log} 2>&1"


# Decoded images, once per dataset (config prepare.image_cache): uint8 pixels at a short side
# that keeps the 224 px views sharp, read through a memory map by every run of the dataset;
# keyed by the images' paths, sizes and modification times and verified when a run opens it.
rule cache_images:
    input:
        unpack(get_manifest),
    output:
        cache=directory(f"{RESULTS}/data/{{dataset}}/images"),
    log:
        f"logs/{RUN}/cache_images/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        manifest=get_manifest_dir,
        short_side=config["prepare"]["cache_short_side"],
    threads: RUNTIME["threads"]  # decoding threads (never above a node: sbatch refuses)
    resources:
        mem_mb=grid.job_mem_mb(config, "cache_images"),
        runtime=grid.job_minutes(config, "cache_images"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} cache --manifest {params.manifest:q} --out {output.cache:q} "
        "--short-side {params.short_side} --workers {threads} > {log} 2>&1"
