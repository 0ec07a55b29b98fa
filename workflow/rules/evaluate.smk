# Figures from adapted states. (Scores are written by rule adapt_method, in the process that
# trained; `microclip evaluate --spec ... --adapted ...` scores a saved state again.)


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
