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
        gpu=1,
        mem_mb=RUNTIME.get("mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} evaluate {params.args} --threads {threads} --manifest {params.manifest} "
        "--prototypes {input.prototypes} --adapted {input.adapted} --out {output.metrics} "
        "--labels '{params.labels}' > {log} 2>&1"
