# Text prototypes per dataset x backbone x description set: the text tower runs once; the
# pointer file names a content-addressed cache entry (hash of model, weights, description
# file, templates, class names; its sha256 stored beside it and verified on every load),
# reused while those inputs are unchanged.


rule build_prototypes:
    input:
        unpack(lambda wildcards: {
            "descriptions": grid.description_file(config, wildcards.dataset, wildcards.descset),
            "classes": f"{grid.manifest_dir(config, wildcards.dataset)}/classes.json",
            "templates": f"{grid.manifest_dir(config, wildcards.dataset)}/templates.json",
            "weights": get_weights_input(wildcards),
        }),
    output:
        pointer=f"{RESULTS}/prototypes/{{backbone}}/{{descset}}/{{dataset}}.json",
    log:
        f"logs/{RUN}/build_prototypes/{{backbone}}/{{descset}}/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        model=lambda wildcards: config["backbones"][wildcards.backbone]["model"],
        pretrained=lambda wildcards: grid.pretrained_of(config, wildcards.backbone) or "none",
        cache_dir="results/cache/prototypes",
        device=RUNTIME["device"],
    threads: 2
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=grid.job_mem_mb(config, "build_prototypes"),
        runtime=grid.job_minutes(config, "build_prototypes"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} prototypes --dataset {wildcards.dataset} --model {params.model} "
        "--pretrained {params.pretrained:q} --descriptions {input.descriptions:q} "
        "--classes {input.classes:q} --templates {input.templates:q} --out {output.pointer:q} "
        "--cache-dir {params.cache_dir} --device {params.device} > {log} 2>&1"
