# Evaluation: the adapted state scored on the test split -> one flat metrics.json per run.


rule evaluate_method:
    input:
        unpack(get_manifest),
        prototypes=get_prototypes,
        weights=get_weights_input,
        adapted=f"{RESULTS}/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}/adapted.pt",
    output:
        metrics=f"{RESULTS}/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}/metrics.json",
    log:
        f"logs/{RUN}/evaluate_method/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}.log",
    params:
        microclip=MICROCLIP,
        args=run_args,
        manifest=lambda wildcards: manifest_dir(wildcards.dataset),
        labels=lambda wildcards: get_labels(wildcards),
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=RUNTIME.get("mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} evaluate {params.args} --threads {threads} --manifest {params.manifest} "
        "--prototypes {input.prototypes} --adapted {input.adapted} --out {output.metrics} "
        "--labels '{params.labels}' > {log} 2>&1"


# Saliency arrays (NCut mask, SOAP attention, [CLS] attention) of an adapted microCLIP on
# the first test images, for the figures (config `saliency`; seed = the first seed).
rule explain_saliency:
    input:
        unpack(get_manifest),
        prototypes=lambda wildcards: get_prototypes(saliency_wildcards(wildcards)),
        weights=get_weights_input,
        adapted=lambda wildcards: "{}/adapted.pt".format(
            run_dir(*vars(saliency_wildcards(wildcards)).values())
        ),
    output:
        npz=f"{RESULTS}/saliency/{{backbone}}/{{dataset}}.npz",
    log:
        f"logs/{RUN}/explain_saliency/{{backbone}}/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        args=lambda wildcards: run_args(saliency_wildcards(wildcards)),
        manifest=lambda wildcards: manifest_dir(wildcards.dataset),
        max_images=lookup(dpath="saliency/max_images", within=config, default=8),
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=RUNTIME.get("mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} explain {params.args} --threads {threads} "
        "--manifest {params.manifest} --prototypes {input.prototypes} "
        "--adapted {input.adapted} --out {output.npz} --max-images {params.max_images} "
        "> {log} 2>&1"
