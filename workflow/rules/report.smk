# Report stage: grid.json (which runs form which table) + the runs' metrics.json and
# epochs.jsonl -> runs.csv/epochs.csv -> tables and figures, every one marked for
# `snakemake --report report.html` (captions in workflow/report/*.rst; categories are
# datasets, subcategories backbones). Reads result files only; CPU jobs.


import os


rule write_grid:
    input:
        datasets=expand(f"{RESULTS}/data/{{dataset}}/dataset.json", dataset=grid.grid_datasets(config)),
    output:
        grid=f"{RESULTS}/grid.json",
    log:
        f"logs/{RUN}/write_grid.log",
    params:
        microclip=MICROCLIP,
        grid=json.dumps(grid.report_grid(config), sort_keys=True),
    threads: 1
    resources:
        mem_mb=grid.job_mem_mb(config, "write_grid"),
        runtime=grid.job_minutes(config, "write_grid"),
    conda:
        "../../envs/report.yaml"
    shell:
        "{params.microclip} grid --grid {params.grid:q} --datasets {input.datasets:q} "
        "--out {output.grid:q} > {log} 2>&1"


rule collect_results:
    input:
        metrics=[f"{grid.run_dir(config, r)}/metrics.json" for r in GRID],
        epochs=[f"{grid.run_dir(config, r)}/epochs.jsonl" for r in GRID],
        grid=f"{RESULTS}/grid.json",
        published="reference/published.csv",
    output:
        runs=f"{RESULTS}/runs.csv",
        epochs=f"{RESULTS}/epochs.csv",
    log:
        f"logs/{RUN}/collect_results.log",
    params:
        microclip=MICROCLIP,
        quiet="" if config["report"]["summary"] else "--quiet",
    threads: 1
    resources:
        mem_mb=grid.job_mem_mb(config, "collect_results"),
        runtime=grid.job_minutes(config, "collect_results"),
    conda:
        "../../envs/report.yaml"
    shell:
        # the one-screen summary (stdout) goes to the terminal; messages go to the log
        "{params.microclip} collect {input.metrics:q} --grid {input.grid:q} "
        "--published {input.published:q} --runs {output.runs:q} --epochs {output.epochs:q} "
        "{params.quiet} 2> {log}"


rule make_tables:
    input:
        runs=f"{RESULTS}/runs.csv",
        grid=f"{RESULTS}/grid.json",
        published="reference/published.csv",
    output:
        main=report(
            directory(f"{RESULTS}/tables/main"),
            patterns=["{backbone}.html"],
            caption="../report/main_table.rst",
            category="All datasets",
            subcategory="{backbone}",
            labels={"table": "main table", "backbone": "{backbone}"},
        ),
        datasets=report(
            directory(f"{RESULTS}/tables/datasets"),
            patterns=["{backbone}/{dataset}.html"],
            caption="../report/dataset_table.rst",
            category="{dataset}",
            subcategory="{backbone}",
            labels={"table": "per-dataset table", "dataset": "{dataset}", "backbone": "{backbone}"},
        ),
        ablations=report(
            directory(f"{RESULTS}/tables/ablations"),
            patterns=["{ablation}.html"],
            caption="../report/ablation_table.rst",
            category="Ablations",
            subcategory="{ablation}",
            labels={"table": "ablation", "ablation": "{ablation}"},
        ),
        provenance=report(
            f"{RESULTS}/tables/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"table": "provenance"},
        ),
        provenance_md=f"{RESULTS}/tables/provenance.md",
    log:
        f"logs/{RUN}/make_tables.log",
    params:
        microclip=MICROCLIP,
        out=lambda wildcards, output: os.path.dirname(output.main),
    threads: 1
    resources:
        mem_mb=grid.job_mem_mb(config, "make_tables"),
        runtime=grid.job_minutes(config, "make_tables"),
    conda:
        "../../envs/report.yaml"
    shell:
        "{params.microclip} tables --runs {input.runs:q} --grid {input.grid:q} "
        "--published {input.published:q} --out {params.out:q} > {log} 2>&1"


rule make_diagnostics_table:
    input:
        diagnostics=diagnostics_files(),
        grid=f"{RESULTS}/grid.json",
    output:
        html=report(
            f"{RESULTS}/tables/diagnostics.html",
            caption="../report/diagnostics.rst",
            category="Diagnostics",
            labels={"table": "mechanism diagnostics"},
        ),
        csv=f"{RESULTS}/tables/diagnostics.csv",
        md=f"{RESULTS}/tables/diagnostics.md",
        tex=f"{RESULTS}/tables/diagnostics.tex",
    log:
        f"logs/{RUN}/make_diagnostics_table.log",
    params:
        microclip=MICROCLIP,
        stem=lambda wildcards, output: os.path.splitext(output.html)[0],
    threads: 1
    resources:
        mem_mb=grid.job_mem_mb(config, "make_diagnostics_table"),
        runtime=grid.job_minutes(config, "make_diagnostics_table"),
    conda:
        "../../envs/report.yaml"
    shell:
        "{params.microclip} diagnostics-table {input.diagnostics:q} --grid {input.grid:q} "
        "--out {params.stem:q} > {log} 2>&1"


rule make_plots:
    input:
        runs=f"{RESULTS}/runs.csv",
        epochs=f"{RESULTS}/epochs.csv",
        grid=f"{RESULTS}/grid.json",
    output:
        accuracy=report(
            directory(f"{RESULTS}/plots/accuracy"),
            patterns=["{backbone}/{dataset}.png"],
            caption="../report/accuracy.rst",
            category="{dataset}",
            subcategory="{backbone}",
            labels={"figure": "accuracy per method", "dataset": "{dataset}", "backbone": "{backbone}"},
        ),
        epochs=report(
            directory(f"{RESULTS}/plots/epochs"),
            patterns=["{backbone}/{dataset}.png"],
            caption="../report/epochs.rst",
            category="{dataset}",
            subcategory="{backbone}",
            labels={"figure": "accuracy per epoch", "dataset": "{dataset}", "backbone": "{backbone}"},
        ),
        overview=report(
            directory(f"{RESULTS}/plots/overview"),
            patterns=["{backbone}.png"],
            caption="../report/overview.rst",
            category="All datasets",
            subcategory="{backbone}",
            labels={"figure": "accuracy, all datasets", "backbone": "{backbone}"},
        ),
        delta=report(
            directory(f"{RESULTS}/plots/delta"),
            patterns=["{backbone}.png"],
            caption="../report/delta.rst",
            category="All datasets",
            subcategory="{backbone}",
            labels={"figure": "gain over the strongest baseline", "backbone": "{backbone}"},
        ),
        gamma=report(
            directory(f"{RESULTS}/plots/gamma"),
            patterns=["{backbone}.png"],
            caption="../report/gamma.rst",
            category="Ablations",
            subcategory=config["report"]["gamma_ablation"],
            labels={"figure": "gamma sweep", "backbone": "{backbone}"},
        ),
    log:
        f"logs/{RUN}/make_plots.log",
    params:
        microclip=MICROCLIP,
        out=lambda wildcards, output: os.path.dirname(output.accuracy),
    threads: 1
    resources:
        mem_mb=grid.job_mem_mb(config, "make_plots"),
        runtime=grid.job_minutes(config, "make_plots"),
    conda:
        "../../envs/report.yaml"
    shell:
        "{params.microclip} plots --runs {input.runs:q} --epochs {input.epochs:q} "
        "--grid {input.grid:q} --out {params.out:q} > {log} 2>&1"


rule plot_saliency:
    input:
        npz=f"{RESULTS}/saliency/{{backbone}}/{{dataset}}.npz",
    output:
        png=report(
            f"{RESULTS}/plots/saliency/{{backbone}}/{{dataset}}.png",
            caption="../report/saliency.rst",
            category="{dataset}",
            subcategory="{backbone}",
            labels={"figure": "saliency", "dataset": "{dataset}", "backbone": "{backbone}"},
        ),
        pdf=f"{RESULTS}/plots/saliency/{{backbone}}/{{dataset}}.pdf",
    log:
        f"logs/{RUN}/plot_saliency/{{backbone}}/{{dataset}}.log",
    params:
        microclip=MICROCLIP,
        max_images=config["saliency"]["max_images"],
        title=lambda wildcards: f"{wildcards.dataset} / {wildcards.backbone}",
    threads: 1
    resources:
        mem_mb=grid.job_mem_mb(config, "plot_saliency"),
        runtime=grid.job_minutes(config, "plot_saliency"),
    conda:
        "../../envs/report.yaml"
    shell:
        "{params.microclip} saliency {input.npz:q} --png {output.png:q} --pdf {output.pdf:q} "
        "--title {params.title:q} --max-images {params.max_images} > {log} 2>&1"
