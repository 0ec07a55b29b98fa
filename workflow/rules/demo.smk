# The offline demo world: a small open_clip CLIP pretrained contrastively on the clean
# SOURCE domain (Fashion-MNIST), saved as a checkpoint that every later rule loads through
# open_clip's pretrained=<path>, exactly like a real checkpoint.


rule pretrain_demo_clip:
    input:
        descriptions=config["demo"]["descriptions"],
        synonyms=config["demo"]["synonyms"],
    output:
        weights=f"{RESULTS}/backbones/{{backbone}}.pt",
        stats=f"{RESULTS}/backbones/{{backbone}}.stats.json",
    log:
        f"logs/{RUN}/pretrain_demo_clip/{{backbone}}.log",
    params:
        microclip=MICROCLIP,
        dataset=config["demo"]["dataset"],
        root=f"{config['data_root']}/{config['demo']['dataset']}",
        settings=json.dumps(config["demo"]["pretrain"], sort_keys=True),
        seed=config["demo"]["seed"],
    threads: config["demo"]["threads"]
    resources:
        mem_mb=grid.job_mem_mb(config, "pretrain_demo_clip"),
        runtime=grid.job_minutes(config, "pretrain_demo_clip"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} pretrain-demo --dataset {params.dataset} --root {params.root:q} "
        "--descriptions {input.descriptions:q} --synonyms {input.synonyms:q} "
        "--out {output.weights:q} --stats {output.stats:q} --seed {params.seed} "
        "--threads {threads} --settings {params.settings:q} > {log} 2>&1"
