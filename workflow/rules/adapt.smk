# Adaptation of one (method, dataset, backbone, seed) on the unlabelled train split.
# Checkpoints every epoch (checkpoint.pt beside the outputs, not a declared output, so a
# killed job resumes where it stopped); GPU jobs declare gpu=1 so `--resources gpu=1`
# never runs two trainings on one GPU.


rule adapt_method:
    input:
        unpack(get_manifest),
        prototypes=get_prototypes,
        weights=get_weights_input,
    output:
        adapted=f"{RESULTS}/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}/adapted.pt",
        epochs=f"{RESULTS}/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}/epochs.jsonl",
    log:
        f"logs/{RUN}/adapt_method/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}.log",
    params:
        microclip=MICROCLIP,
        args=run_args,
        manifest=lambda wildcards: manifest_dir(wildcards.dataset),
        checkpoint=lambda wildcards: f"{run_dir(wildcards.method, wildcards.dataset, wildcards.backbone, wildcards.seed)}/checkpoint.pt",
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=RUNTIME.get("mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} adapt {params.args} --threads {threads} --manifest {params.manifest} "
        "--prototypes {input.prototypes} --out {output.adapted} --epoch-log {output.epochs} "
        "--checkpoint {params.checkpoint} > {log} 2>&1"
