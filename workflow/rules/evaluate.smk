# Evaluation: the adapted state scored on the test split -> one flat metrics.json per run
# (a RunRecord, microclip/results.py). The epoch log beside it completes the record.


rule evaluate_method:
    input:
        unpack(get_manifest),
        prototypes=get_prototypes,
        weights=get_weights_input,
        adapted=f"{RUN_DIR}/adapted.pt",
        epochs=f"{RUN_DIR}/epochs.jsonl",
    output:
        metrics=f"{RUN_DIR}/metrics.json",
    log:
        f"logs/{RUN}/evaluate_method/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}.log",
    params:
        microclip=MICROCLIP,
        spec=get_spec,
        placement=placement,
        manifest=lambda wildcards: grid.manifest_dir(config, wildcards.dataset),
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=RUNTIME["mem_mb"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} evaluate --spec {params.spec:q} {params.placement} "
        "--manifest {params.manifest:q} --prototypes {input.prototypes:q} "
        "--adapted {input.adapted:q} --out {output.metrics:q} > {log} 2>&1"


# Saliency maps of an adapted method (config `saliency`: its method, first seed) on the
# first test images, for the figures; the method says which maps it draws.
rule explain_saliency:
    input:
        unpack(get_manifest),
        prototypes=lambda wildcards: get_prototypes(get_saliency_run(wildcards)),
        weights=get_weights_input,
        adapted=lambda wildcards: f"{grid.run_dir(config, get_saliency_run(wildcards))}/adapted.pt",
    output:
        npz=f"{RESULTS}/saliency/{{backbone}}/{{dataset}}.npz",
    log:
        f"logs/{RUN}/explain_saliency/{{backbone}}/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        spec=lambda wildcards: get_spec(get_saliency_run(wildcards)),
        placement=placement,
        manifest=lambda wildcards: grid.manifest_dir(config, wildcards.dataset),
        max_images=config["saliency"]["max_images"],
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=RUNTIME["mem_mb"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} explain --spec {params.spec:q} {params.placement} "
        "--manifest {params.manifest:q} --prototypes {input.prototypes:q} "
        "--adapted {input.adapted:q} --out {output.npz:q} --max-images {params.max_images} "
        "> {log} 2>&1"
