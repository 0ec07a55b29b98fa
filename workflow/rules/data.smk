# Datasets: check the files under data_root and write the protocol manifest
# (train.csv = unlabelled adaptation split, test.csv = scored split, classes.json,
# templates.json). A missing, incomplete or corrupt dataset stops here with a message
# naming what is missing and how to get it. Nothing downloads unless prepare.download.


rule prepare_dataset:
    output:
        train=f"{RESULTS}/data/{{dataset}}/train.csv",
        test=f"{RESULTS}/data/{{dataset}}/test.csv",
        classes=f"{RESULTS}/data/{{dataset}}/classes.json",
        templates=f"{RESULTS}/data/{{dataset}}/templates.json",
    log:
        f"logs/{RUN}/prepare_dataset/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        root=get_dataset_root,
        out=lambda wildcards: manifest_dir(wildcards.dataset),
        custom=lambda wildcards: f"--custom '{get_custom_entry(wildcards)}'" if get_custom_entry(wildcards) else "",
        flags=" ".join(
            [
                "" if lookup(dpath="prepare/verify", within=config, default=True) else "--no-verify",
                "" if lookup(dpath="prepare/check_counts", within=config, default=True) else "--no-check-counts",
                "--download" if lookup(dpath="prepare/download", within=config, default=False) else "",
            ]
        ),
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} prepare --dataset {wildcards.dataset} --root {params.root} "
        "--out {params.out} {params.custom} {params.flags} > {log} 2>&1"
