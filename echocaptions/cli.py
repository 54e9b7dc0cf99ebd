"""The ``echocaptions`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build captioned ultrasound image-text datasets from public ultrasound datasets.",
)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _parse_sources(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        if "=" not in value:
            _fail(f"--source {value!r}: expected NAME=PATH")
        name, path = value.split("=", 1)
        out[name.strip()] = path
    return out


@app.command()
def build(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Bundled recipe name or YAML path.")],
    data_root: Annotated[Path | None, typer.Option(help="Folder holding the downloaded datasets.")] = None,
    source: Annotated[
        list[str], typer.Option("--source", help="NAME=PATH: where one source lives.")
    ] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Output folder (default out/RECIPE).")] = None,
    set_: Annotated[
        list[str], typer.Option("--set", help="KEY=VALUE recipe override, e.g. seed=3.")
    ] = [],  # noqa: B006
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes for the image and caption stages (Ray: CPUs of a private Ray)."),
    ] = 1,
    executor: Annotated[
        str | None, typer.Option(help="Executor: local or ray (default: the recipe's, else local).")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of a Ray head (`ray start --head`), or auto; implies --executor ray."),
    ] = None,
    keep_work: Annotated[bool, typer.Option(help="Keep OUT/.work (staged shards) after success.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build a dataset from a recipe."""
    from echocaptions.pipeline import BuildError
    from echocaptions.pipeline import build as run_build
    from echocaptions.recipe import RecipeError, load_recipe

    try:
        parsed = load_recipe(recipe, data_root=data_root, sources=_parse_sources(source), out=out, overrides=set_)
        result = run_build(
            parsed, workers=workers, executor=executor, ray_address=ray_address, quiet=quiet, keep_work=keep_work
        )
    except (RecipeError, BuildError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: finished shards are kept; rerun the same command to resume.",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(130) from None
    stats = result.stats
    splits = ", ".join(f"{k} {v}" for k, v in stats["splits"].items())
    typer.echo(f"built {stats['rows']} rows ({splits}) in {result.out}")
    typer.echo(f"captions by source: {json.dumps(stats['caption_sources'])}")
    if stats.get("llm_unavailable"):
        typer.secho(f"warning: {stats['llm_unavailable']}; rows fell back to the next tier", fg=typer.colors.YELLOW)
    for name, why in stats["skipped_sources"].items():
        typer.secho(f"note: skipped source {name!r}: {why}", fg=typer.colors.YELLOW, err=True)
    for name, messages in stats.get("notices", {}).items():
        for message in messages:
            typer.secho(f"note: source {name!r}: {message}", fg=typer.colors.YELLOW, err=True)
    unlabelled = {name: s["unlabelled"] for name, s in stats["sources"].items() if s.get("unlabelled")}
    if unlabelled:
        typer.echo(f"rows without a label (kept, captioned from findings or organ): {json.dumps(unlabelled)}")
    for name in stats["empty_sources"]:
        typer.secho(f"warning: source {name!r} gave no items", fg=typer.colors.YELLOW, err=True)
    if stats["rejected"]:
        typer.echo(f"rejected {stats['rejected']} of {stats['read']} items; reasons in {result.rejects_path}")
    else:
        typer.echo(f"rejected 0 of {stats['read']} items")


captions_app = typer.Typer(no_args_is_help=True, help="Look at caption tiers.")
app.add_typer(captions_app, name="captions")


@captions_app.command("preview")
def captions_preview(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Bundled recipe name or YAML path.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Examples per template level.")] = 20,
    data_root: Annotated[Path | None, typer.Option(help="Folder holding the downloaded datasets.")] = None,
    source: Annotated[
        list[str], typer.Option("--source", help="NAME=PATH: where one source lives.")
    ] = [],  # noqa: B006
    set_: Annotated[list[str], typer.Option("--set", help="KEY=VALUE recipe override.")] = [],  # noqa: B006
) -> None:
    """Template captions of the recipe's own records, up to N per level (findings, diagnosis, organ)."""
    from echocaptions.captions.templates import LEVELS, TemplateCaptioner
    from echocaptions.recipe import RecipeError, load_recipe
    from echocaptions.schema import SourceItem
    from echocaptions.sources import SourceError, get_source_class

    try:
        parsed = load_recipe(recipe, data_root=data_root, sources=_parse_sources(source), overrides=set_)
    except RecipeError as exc:
        _fail(str(exc))
    template_dir = Path(parsed.captions.template_dir) if parsed.captions.template_dir else None
    captioner = TemplateCaptioner(template_dir, seed=parsed.seed)
    shown: dict[str, list[str]] = {level: [] for level in LEVELS}
    for spec in parsed.sources:
        try:
            src = get_source_class(spec.layout)(spec.name, parsed.source_root(spec), spec.options, role=spec.role)
            src.check()
        except SourceError as exc:
            if spec.optional:
                continue
            _fail(str(exc))
        for item in src.items():
            if not isinstance(item, SourceItem) or (spec.organs and item.organ not in spec.organs):
                continue
            cap = captioner.caption(
                record_id=item.id, organ=item.organ, label=item.label, findings=item.findings,
                view=item.view, dataset=item.dataset,
            )
            level = cap.provenance.level or "organ"
            if len(shown[level]) < n:
                shown[level].append(f"[{item.dataset}:{item.source_path}] {cap.text}")
            if all(len(v) >= n for v in shown.values()):
                break
    for level in LEVELS:
        typer.secho(f"{level} level ({len(shown[level])})", bold=True)
        for line in shown[level]:
            typer.echo(f"  {line}")


@app.command("serve-llm", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve_llm(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="Model folder, or a model name vLLM can load.")],
    port: Annotated[int, typer.Option(help="Port on the host.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    served_model_name: Annotated[
        str | None, typer.Option(help="Name clients ask for (llm.model); default: the folder name.")
    ] = None,
    python: Annotated[
        Path | None, typer.Option(help="Interpreter that has vLLM (default: this one, else .venv-vllm).")
    ] = None,
    max_model_len: Annotated[int, typer.Option(help="Context length (0: the model's own).")] = 2048,
    dtype: Annotated[str, typer.Option(help="vLLM --dtype (auto, bfloat16, float16).")] = "auto",
    eager: Annotated[bool, typer.Option(help="--enforce-eager: start fast, skip graph compilation.")] = True,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for /v1/models.")] = 900.0,
    log: Annotated[Path | None, typer.Option(help="Write the server's output here instead of the terminal.")] = None,
) -> None:
    """Start vLLM's OpenAI-compatible server, wait until it answers, keep it running until Ctrl-C.

    Arguments after `--` go to vLLM unchanged (e.g. `-- --tensor-parallel-size 2`).
    """
    from echocaptions.captions.llm.serve import (
        ServeError,
        ServerProcess,
        find_python,
        recipe_block,
        server_argv,
        server_env,
    )

    name = served_model_name or Path(model.rstrip("/")).name
    if model.startswith((".", "/", "~")) and not Path(model).expanduser().is_dir():
        _fail(f"--model {model}: no model folder there; pass a folder with config.json, or a model name")
    try:
        interpreter = find_python(python)
    except ServeError as exc:
        _fail(str(exc))
    argv = server_argv(
        interpreter, model, name, host, port, max_model_len or None, dtype, eager, list(ctx.args)
    )
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/v1"
    server = ServerProcess(argv, base_url, name, log)
    typer.echo(f"starting: {' '.join(argv)}", err=True)
    server.start(env=server_env(model))
    try:
        try:
            ready = server.wait_ready(ready_timeout)
        except ServeError as exc:
            _fail(str(exc), code=1)
        typer.secho(f"serving {name} at {base_url} (ready in {ready:.0f} s); Ctrl-C stops it", fg=typer.colors.GREEN)
        typer.echo(f"recipe: {recipe_block(base_url, name)}")
        assert server.process is not None
        code = server.process.wait()
        _fail(f"vLLM exited with {code}", code=1)
    except KeyboardInterrupt:
        typer.echo("stopping vLLM", err=True)
    finally:
        server.stop()


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write phantom sources into.")],
    organs: Annotated[str, typer.Option(help="Comma-separated organs.")] = "breast,thyroid,liver,lung",
    per_class: Annotated[int, typer.Option(min=1, help="Images per class and layout.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    wrappers: Annotated[
        bool, typer.Option(help="Archives unzipped into wrapper folders (BUSI/archive/..., AUL/Annotated_...).")
    ] = False,
    variants: Annotated[
        bool, typer.Option(help="The real files' irregular spellings (POCUS '_' names, .MP4/.mpeg, Convex/).")
    ] = False,
    lfs_pointers: Annotated[
        bool, typer.Option(help="Git LFS pointer files in place of the COVID-BLUES videos.")
    ] = False,
) -> None:
    """Write phantom ultrasound data in the public datasets' layouts."""
    from echocaptions.schema import ORGANS
    from echocaptions.synth import make_phantom

    chosen = [o.strip() for o in organs.split(",") if o.strip()]
    bad = [o for o in chosen if o not in ORGANS]
    if bad:
        _fail(f"--organs: unknown {bad}; allowed: {', '.join(ORGANS)}")
    roots = make_phantom(
        out, organs=chosen, per_class=per_class, seed=seed, wrappers=wrappers, variants=variants,
        lfs_pointers=lfs_pointers,
    )
    for layout, root in roots.items():
        typer.echo(f"{layout:15s} {root}")


def sources_markdown() -> str:
    """Where to get each layout and how to lay it out, as the README's Markdown (one source of truth)."""
    from echocaptions.sources import registry

    def text(value: str) -> str:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")

    def cell(values: tuple[str, ...] | str) -> str:
        items = (values,) if isinstance(values, str) else values
        return "<br>".join(text(v) for v in items if v) or "–"

    lines = [
        "| layout | organ | get it from | folder under the data root | required | optional |",
        "|---|---|---|---|---|---|",
    ]
    details = []
    for layout, cls in registry().items():
        lines.append(
            f"| `{layout}` | {', '.join(cls.organs)} | {cell(cls.download)} | {cell(cls.folder)} | "
            f"{cell(cls.required or cls.expected)} | {cell(cls.optional)} |"
        )
        notes = [f"- {text(q)}" for q in cls.quirks]
        if cls.grouping_note:
            notes.append(f"- patients: {text(cls.grouping_note)}")
        notes.append(f"- cite: {text(cls.published)}")
        details.append(f"**`{layout}`**\n\n" + "\n".join(notes))
    return "\n".join(lines) + (
        "\n\n<details><summary>Known facts of the real files, per layout (and what to cite)</summary>\n\n"
        + "\n\n".join(details)
        + "\n\n</details>\n"
    )


@app.command()
def sources(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README's Markdown table.")] = False,
) -> None:
    """List source layouts: where to download each, the folder, required and optional files, known quirks."""
    from echocaptions.sources import registry

    if markdown:
        typer.echo(sources_markdown(), nl=False)
        return
    for layout, cls in registry().items():
        typer.echo(f"{layout}  [{', '.join(cls.organs)}]")
        if cls.download:
            typer.echo(f"    download:  {cls.download}")
        if cls.folder:
            typer.echo(f"    unpack to: DATA_ROOT/{cls.folder}")
        typer.echo(f"    expects:   {cls.expected}")
        for label, values in (("required", cls.required), ("optional", cls.optional), ("quirks", cls.quirks)):
            for n, value in enumerate(values):
                typer.echo(f"    {label if n == 0 else '':10s} - {value}")
        if cls.grouping_note:
            typer.echo(f"    patients:  {cls.grouping_note}")
        typer.echo(f"    published: {cls.published}")
        typer.echo("")


@app.command()
def recipes() -> None:
    """List bundled recipes."""
    from echocaptions.recipe import list_recipes, load_recipe

    for name in list_recipes():
        recipe = load_recipe(name)
        typer.echo(f"{name:12s} {recipe.description.strip().splitlines()[0] if recipe.description else ''}")


@app.command()
def diversity(
    folder: Annotated[Path, typer.Argument(help="A built dataset folder.")],
    by: Annotated[str, typer.Option(help="Comma-separated grouping columns, or 'strategy'.")] = "caption_source",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Lexical diversity and findings fidelity of a build's captions, grouped."""
    from echocaptions.metrics.diversity import grouped
    from echocaptions.metrics.tables import SUMMARY_HEAD, strategy_rows, summary_table
    from echocaptions.publish.build import BuildFolderError, open_build
    from echocaptions.schema import LABEL_NAMES, ORGANS

    try:
        build = open_build(folder)
    except BuildFolderError as exc:
        _fail(str(exc))
    columns = ["id", "caption", "caption_source", "organ", "label", "dataset", "findings", "captions", "split"]
    rows = []
    for batch in build.batches(columns, batch_rows=1024):
        for r in batch.to_pylist():
            r["organ"] = ORGANS[r["organ"]]
            r["label"] = None if r["label"] is None or r["label"] < 0 else LABEL_NAMES[r["label"]]
            rows.append(r)
    rows.sort(key=lambda r: r["id"])
    keys = [k.strip() for k in by.split(",") if k.strip()]
    if keys == ["strategy"]:
        rows = strategy_rows(rows)
    unknown = [k for k in keys if k not in (*columns, "strategy")]
    if unknown:
        _fail(f"--by {by!r}: unknown columns {unknown}; choose from {', '.join((*columns, 'strategy'))}")
    tables = grouped(rows, keys)
    if as_json:
        typer.echo(json.dumps(tables, indent=2, sort_keys=True))
        return
    for line in [" | ".join(SUMMARY_HEAD), *(" | ".join(r) for r in summary_table({"t": tables}, "t"))]:
        typer.echo(line)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A built dataset folder.")],
    per_class: Annotated[int, typer.Option(min=0, help="Gallery rows per organ and label.")] = 6,
) -> None:
    """Write FOLDER/report.html: counts, leakage check, diversity, rejects and a captioned gallery."""
    from echocaptions.publish.report_html import ReportError, write_report

    try:
        path = write_report(folder, per_class=per_class)
    except ReportError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {path} ({path.stat().st_size // 1024} KB)")


@app.command()
def publish(
    folder: Annotated[Path, typer.Argument(help="A built dataset folder.")],
    repo_id: Annotated[str, typer.Option(help="ORG/NAME on the Hugging Face Hub.")],
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Check and list files without uploading.")] = False,
) -> None:
    """Check a build and upload it to the Hugging Face Hub."""
    from echocaptions.publish.hub import PublishError
    from echocaptions.publish.hub import publish as run_publish

    try:
        plan = run_publish(folder, repo_id, private=private, dry_run=dry_run)
    except PublishError as exc:
        _fail(str(exc))
    action = "would upload" if dry_run else "uploaded"
    typer.echo(f"{action} {len(plan.files)} files to datasets/{plan.repo_id}: splits {plan.splits}")


@app.command("export")
def export_cmd(
    folder: Annotated[Path, typer.Argument(help="A finished build folder (the --out of `echocaptions build`).")],
    to: Annotated[str, typer.Option("--to", help="webdataset | csv (open_clip's trainer) | clip_benchmark.")],
    strategy: Annotated[
        str | None, typer.Option(help="Caption strategy, e.g. report_template, template_only, template_multi.")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Comma-separated splits (default: train,validation; clip_benchmark: test and eval_*)."),
    ] = None,
    dest: Annotated[
        Path | None, typer.Option(help="Output folder (default: FOLDER-TO-STRATEGY beside the build).")
    ] = None,
    samples_per_shard: Annotated[int, typer.Option(min=1, help="Samples per tar shard.")] = 1000,
    prompts: Annotated[
        Path | None, typer.Option(help="Zero-shot prompt set JSON, or a folder of them (default: train_min/zeroshot).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Export a build for open_clip's trainer (webdataset, csv) or CLIP_benchmark (clip_benchmark)."""
    from echocaptions.export import ExportError, export
    from echocaptions.export.hints import lines

    splits = [s.strip() for s in split.split(",") if s.strip()] if split else None
    try:
        result = export(folder, to, strategy, splits=splits, dest=dest, samples_per_shard=samples_per_shard,
                        prompts=prompts, quiet=quiet)
    except ExportError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.secho("interrupted: finished shards are kept; rerun the same command to resume.",
                    fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    if result.already_complete:
        typer.echo(f"{result.dest}: already exported (files checked against its manifest); nothing written")
    else:
        if result.resumed_files:
            typer.echo(f"resumed: {result.resumed_files} finished file(s) kept as they were")
        typer.echo(f"exported {to} ({result.summary['strategy']}) to {result.dest}")
    for line in lines(result.dest, result.summary):
        typer.echo(line)


if __name__ == "__main__":
    app()
