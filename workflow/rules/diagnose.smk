# Mechanism diagnostics (before any adaptation): for every dataset x backbone of the grid,
# whether microCLIP's parts have something to work with on the initial backbone (NCut's
# graph and foreground, [FG] zero-shot, the multi-view prior). Labels only score
# pseudo-labels. One GPU job per pair.


rule diagnose_mechanisms:
    input:
        unpack(get_manifest),
        prototypes=lambda wildcards: get_prototypes(get_diagnosed_run(wildcards)),
        weights=get_weights_input,
        image_cache=get_image_cache,
    output:
        json=f"{RESULTS}/diagnostics/{{dataset}}/{{backbone}}.json",
    log:
        f"logs/{RUN}/diagnose_mechanisms/{{dataset}}/{{backbone}}.log",
    params:
        microclip=MICROCLIP,
        spec=lambda wildcards: get_spec(get_diagnosed_run(wildcards)),
        placement=placement,
        image_cache=image_cache_arg,
        manifest=get_manifest_dir,
        max_images=config["diagnostics"]["max_images"],
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=grid.job_mem_mb(config, "diagnose_mechanisms"),
        runtime=grid.job_minutes(config, "diagnose_mechanisms"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} diagnose --spec {params.spec:q} {params.placement} {params.image_cache} "
        "--manifest {params.manifest:q} --prototypes {input.prototypes:q} "
        "--out {output.json:q} --max-images {params.max_images} > {log} 2>&1"
