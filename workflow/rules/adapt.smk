# One run = one job = one process: adaptation of one (method, dataset, backbone, seed) on
# the unlabelled train split, then its score on the test split, written by the process that
# trained (metrics.json, a RunRecord). Checkpoints every epoch (checkpoint.pt beside the
# outputs, not a declared output, so a killed job resumes where it stopped); GPU jobs
# declare gpu=1 so `--resources gpu=1` never runs two trainings on one GPU. The run
# specification (params.spec) is the only way settings reach the job.
#
# runtime.batch_seeds (the demo): rule adapt_seeds runs every seed of a (method, dataset,
# backbone) in one job, one process, each run exactly as adapt_method would (the same files
# and records); the interpreter, torch and open_clip start once instead of once per seed.


rule adapt_method:
    input:
        unpack(get_manifest),
        prototypes=get_prototypes,
        weights=get_weights_input,
        image_cache=get_image_cache,
    output:
        adapted=f"{RUN_DIR}/adapted.pt",
        epochs=f"{RUN_DIR}/epochs.jsonl",
        metrics=f"{RUN_DIR}/metrics.json",
    log:
        f"logs/{RUN}/adapt_method/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}.log",
    params:
        microclip=MICROCLIP,
        spec=get_spec,
        placement=placement,
        image_cache=image_cache_arg,
        manifest=get_manifest_dir,
        checkpoint=get_checkpoint,
    threads: RUNTIME["threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=grid.job_mem_mb(config, "adapt_method"),
        runtime=grid.job_minutes(config, "adapt_method"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.microclip} adapt --spec {params.spec:q} {params.placement} {params.image_cache} "
        "--manifest {params.manifest:q} --prototypes {input.prototypes:q} "
        "--out {output.adapted:q} --epoch-log {output.epochs:q} --metrics {output.metrics:q} "
        "--checkpoint {params.checkpoint:q} > {log} 2>&1"


if SEED_GROUPS:

    ruleorder: adapt_seeds > adapt_method

    rule adapt_seeds:
        input:
            unpack(in_group(get_manifest)),
            prototypes=in_group(get_prototypes),
            weights=in_group(get_weights_input),
            image_cache=in_group(get_image_cache),
        output:
            adapted=group_outputs("adapted.pt"),
            epochs=group_outputs("epochs.jsonl"),
            metrics=group_outputs("metrics.json"),
        log:
            f"logs/{RUN}/adapt_seeds/{{group}}.log",
        wildcard_constraints:
            group=_alternatives(SEED_GROUPS),
        params:
            microclip=MICROCLIP,
            runs=group_run_arguments,
            placement=placement,
            image_cache=image_cache_arg,
            manifest=in_group(get_manifest_dir),
        threads: RUNTIME["threads"]
        resources:
            gpu=GPU_PER_JOB,
            mem_mb=grid.job_mem_mb(config, "adapt_seeds"),
            runtime=grid.job_minutes(config, "adapt_seeds"),
        conda:
            "../../envs/torch.yaml"
        shell:
            "{params.microclip} adapt {params.runs} {params.placement} {params.image_cache} "
            "--manifest {params.manifest:q} --prototypes {input.prototypes:q} > {log} 2>&1"
