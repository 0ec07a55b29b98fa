# The offline demo world: a small open_clip CLIP pretrained contrastively on the clean
# SOURCE domain (Fashion-MNIST), saved as a checkpoint that every later rule loads through
# open_clip's pretrained=<path>, exactly like a real checkpoint.


rule pretrain_demo_clip:
    input:
        descriptions=lookup(dpath="demo/descriptions", within=config, default=[]),
        synonyms=lookup(dpath="demo/synonyms", within=config, default=[]),
    output:
        weights=f"{RESULTS}/backbones/{{backbone}}.pt",
        stats=f"{RESULTS}/backbones/{{backbone}}.stats.json",
    log:
        f"logs/{RUN}/pretrain_demo_clip/{{backbone}}.log",
    params:
        microclip=MICROCLIP,
        dataset=lookup(dpath="demo/dataset", within=config, default="fashion_shift"),
        root=lambda wildcards: f"{config['data_root']}/{lookup(dpath='demo/dataset', within=config, default='fashion_shift')}",
        options=json.dumps(lookup(dpath="demo/pretrain", within=config, default={})),
        seed=lookup(dpath="demo/seed", within=config, default=0),
    threads: lookup(dpath="demo/threads", within=config, default=2)
    resources:
        mem_mb=4000,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} pretrain-demo --dataset {params.dataset} --root {params.root} "
        "--descriptions {input.descriptions} --synonyms {input.synonyms} "
        "--out {output.weights} --stats {output.stats} --seed {params.seed} "
        "--threads {threads} --options '{params.options}' > {log} 2>&1"
