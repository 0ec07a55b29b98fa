# Figures from adapted states. (Scores are written by rule adapt_method, in the process that
# trained; `microclip evaluate --spec ... --adapted ...` scores a saved state again.)


# Saliency maps of an adapted method (config `saliency`: its method, first seed) on the
# first test images, for the figures; the method says which maps it draws.
rule explain_saliency:
    input:
        unpack(get_manifest),
        prototypes=lambda wildcards: get_prototypes(get_saliency_run(wildcards)),
        weights=get_weights_input,
        image_cache=get_image_cache,
        adapted=lambda wildcards: f"{grid.run_dir(config, get_saliency_run(wildcards))}/adapted.pt",
    output:
        npz=f"{RESULTS}/saliency/{{backbone}}/{{dataset}}.npz",
    log:
        f"logs/{RUN}/explain_saliency/{{backbone}}/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        spec=lambda wildcards: get_spec(get_saliency_run(wildcards)),
        placement=placement,
        image_cache=image_cache_arg,
        manifest=get_manifest_dir,
        max_images=config["saliency"]["max_images"],
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=grid.job_mem_mb(config, "explain_saliency"),
        runtime=grid.job_minutes(config, "explain_saliency"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} explain --spec {params.spec:q} {params.placement} {params.image_cache} "
        "--manifest {params.manifest:q} --prototypes {input.prototypes:q} "
        "--adapted {input.adapted:q} --out {output.npz:q} --max-images {params.max_images} "
        "> {log} 2>&1"
