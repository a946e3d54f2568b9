"""`python -m training`: generate, init-spec, validate, train, evaluate, gate, register, run, drift, rollback,
champion, feedback, promote."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import requests
import typer
from mlflow.exceptions import MlflowException
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sklearn.model_selection import ParameterGrid

from contract import inference_log
from contract.spec import DatasetSpec
from training import data as synthetic
from training import init_spec as init_spec_stage
from training import pipeline, registry
from training.settings import TrainSettings
from training.validate import ValidationResult, read_file, validate_file, validate_frame

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Churn CSV (header row, comma-separated).")]
SpecOpt = Annotated[Path, typer.Option("--spec", help="Dataset spec YAML.")]
WorkOpt = Annotated[
    Path | None, typer.Option("--workdir", help="Hand-off folder between stage commands [default: <home>/work].")
]
ReportOpt = Annotated[
    Path | None, typer.Option("--report-dir", help="Where eval_report.json goes [default: <home>/reports].")
]
MAX_LISTED = 100
MIN_SHADOW = 500
"""Default of `promote --min-shadow-rows`: rows the challenger must have scored in shadow beside the champion."""


class OnInvalid(StrEnum):
    fail = "fail"
    quarantine = "quarantine"


def _settings() -> TrainSettings:
    try:
        return TrainSettings()
    except ValidationError as exc:
        console.print(f"[red]invalid settings:[/red]\n{exc}")
        raise typer.Exit(2) from exc


def _spec(path: Path) -> DatasetSpec:
    try:
        return DatasetSpec.load(path)
    except FileNotFoundError as exc:
        console.print(f"[red]spec not found:[/red] {path}")
        raise typer.Exit(2) from exc
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]invalid dataset spec {path}:[/red]\n{exc}")
        raise typer.Exit(2) from exc


def _shown(text: str) -> Text:
    """Data as it may be printed: invisible characters escaped (a NUL, an escape sequence), no rich markup."""
    return Text("".join(c if c.isprintable() else ascii(c)[1:-1] for c in text))


def _print_failures(result: ValidationResult, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("row", "column", "value", "rule"):
        table.add_column(col)
    for f in result.failures[:MAX_LISTED]:
        table.add_row("-" if f.row is None else str(f.row), _shown(f.column or "-"), _shown(f.value), _shown(f.rule))
    console.print(table)
    if len(result.failures) > MAX_LISTED:
        console.print(f"... and {len(result.failures) - MAX_LISTED} more (all of them: --report-json PATH)")


def _validated(
    data: Path, spec: DatasetSpec, on_invalid: OnInvalid, quarantine: Path | None, report_json: Path | None
) -> ValidationResult:
    if not data.exists():
        console.print(f"[red]data file not found:[/red] {data}")
        raise typer.Exit(2)
    if data.is_dir():
        console.print(f"[red]--data is a directory, not a CSV file:[/red] {data}")
        raise typer.Exit(2)
    result = validate_file(data, spec)
    if report_json is not None:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        report_json.write_text(
            json.dumps(
                {"failures": [f.__dict__ for f in result.failures], "warnings": [w.__dict__ for w in result.warnings]},
                indent=1,
            )
        )
    for w in result.warnings[:MAX_LISTED]:
        console.print(f"[yellow]warning:[/yellow] row {w.row}: {w.rule}")
    if result.ok:
        console.print(f"[green]valid:[/green] {data} ({len(result.valid):,} rows, {len(spec.features)} features)")
        return result
    _print_failures(result, f"{len(result.failures)} validation failure(s) in {data}")
    if on_invalid is OnInvalid.fail or result.fatal:
        if result.fatal and on_invalid is OnInvalid.quarantine:
            console.print("[red]file-level failures cannot be quarantined[/red]")
        console.print("[red]invalid data: nothing was trained or changed[/red]")
        raise typer.Exit(1)
    path = pipeline.quarantine(result, quarantine or data.with_suffix(".quarantine.csv"))
    n_bad = 0 if result.rejected is None else len(result.rejected)
    console.print(
        f"[yellow]quarantined {n_bad} row(s) with their reasons to {path}; "
        f"continuing with {len(result.valid):,} valid rows[/yellow]"
    )
    return result


def _connect(settings: TrainSettings) -> str:
    try:
        return registry.connect(
            settings.resolved_tracking_uri,
            home=settings.home if settings.embedded else None,
            experiment=settings.experiment,
        )
    except registry.RegistryUnavailableError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(3) from exc


@app.command("generate-data")
def generate_data(
    rows: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    out_path: Annotated[Path, typer.Option("--out", help="CSV to write.")] = Path("data/raw/churn.csv"),
) -> None:
    """Write a synthetic churn CSV from the generative model documented in the README."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    synthetic.generate(rows, seed).to_csv(out_path, index=False)
    console.print(f"wrote {rows:,} rows to {out_path}")


@app.command("init-spec")
def init_spec(
    data: DataOpt,
    target: Annotated[str, typer.Option(help="The label column.")],
    out_path: Annotated[Path, typer.Option("--out", help="Spec YAML to write (never overwritten).")],
    positive: Annotated[str | None, typer.Option(help="The target value that means churn (default: guessed).")] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name (default: the CSV's file name).")] = None,
) -> None:
    """Draft a dataset spec from a CSV: prints what it inferred and what to review; the draft validates and trains
    the CSV it came from as it is."""
    if out_path.exists():
        console.print(f"[red]{out_path} exists:[/red] choose another --out (a spec is never overwritten)")
        raise typer.Exit(2)
    raw, why = read_file(data)
    if raw is None:
        console.print(f"[red]cannot read {data}:[/red] {why}")
        raise typer.Exit(2)
    try:
        drafted = init_spec_stage.draft(raw, target=target, positive=positive, name=name or data.stem)
    except init_spec_stage.SpecDraftError as exc:
        console.print(f"[red]cannot draft a spec from {data}:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"inferred from {data} ({len(raw):,} rows)", title_justify="left")
    for col in ("column", "inferred", "from"):
        table.add_column(col)
    for row in drafted.inferred:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    for note in drafted.review:
        console.print(f"[yellow]review:[/yellow] {note}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(drafted.spec.to_yaml(), encoding="utf-8")
    out.print(f"wrote {out_path}: python -m training run --data {data} --spec {out_path}")


@app.command()
def validate(
    data: DataOpt,
    spec: SpecOpt,
    on_invalid: Annotated[OnInvalid, typer.Option(help="fail: exit 1; quarantine: set bad rows aside.")] = (
        OnInvalid.fail
    ),
    quarantine: Annotated[Path | None, typer.Option(help="Quarantine CSV [default: <data>.quarantine.csv].")] = None,
    report_json: Annotated[Path | None, typer.Option(help="Write every failure to this JSON file.")] = None,
) -> None:
    """Check a CSV against the spec; list every failure as (row, column, value, rule)."""
    _validated(data, _spec(spec), on_invalid, quarantine, report_json)


def _fit(data: Path, spec_path: Path, on_invalid: OnInvalid, settings: TrainSettings) -> pipeline.Candidate:
    spec = _spec(spec_path)
    result = _validated(data, spec, on_invalid, None, None)
    grids = settings.grids
    n_fits = settings.cv_folds * (sum(len(ParameterGrid(g)) + 1 for g in grids.values()) + 1)
    families = ", ".join(grids)
    with _progress() as progress:
        progress.add_task(
            f"grid search ({families}) + threshold: {n_fits} fits on {len(result.valid):,} rows", total=None
        )
        return pipeline.fit(result, spec, pipeline.sha256(data), settings)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console)


def _show_report(c: pipeline.Candidate) -> None:
    m, ci, base = c.report["metrics"], c.report["confidence_intervals"], c.report["baseline"]
    table = Table(title=f"held-out test ({c.report['test_rows']} rows), threshold {c.trained.threshold:.3f}")
    table.add_column("metric")
    table.add_column(c.trained.family, justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("baseline (LR)", justify="right")
    for k, v in m.items():
        interval = f"{ci[k][0]:.3f}-{ci[k][1]:.3f}" if k in ci else ""
        table.add_row(k, f"{v:.4f}", interval, f"{base[k]:.4f}")
    console.print(table)
    if len(c.trained.candidates) > 1:
        console.print(
            f"model family (auto): {c.trained.family}; out-of-fold ROC AUC "
            + ", ".join(f"{f} {v['cv_roc_auc']:.4f}" for f, v in c.trained.candidates.items())
        )
    console.print(
        f"{c.trained.family} best params: {c.trained.best_params}; cross-validated: "
        + ", ".join(f"{k} {v:.4f}" for k, v in c.trained.cv.items())
    )
    colour = "yellow" if c.report["baseline_beats_candidate"] else "green"
    console.print(f"[{colour}]{c.report['baseline_comparison']}[/{colour}]")
    for w in c.trained.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")


def _show_gate(c: pipeline.Candidate) -> None:
    assert c.decision is not None
    colour = "green" if c.decision.passed else "red"
    console.print(f"[{colour}]gate {'passed' if c.decision.passed else 'FAILED'}[/{colour}]")
    for reason in c.decision.reasons:
        console.print(f"  {reason}")


def _workdir(workdir: Path | None, settings: TrainSettings) -> Path:
    return workdir or settings.home / "work"


@app.command("train")
def train_cmd(
    data: DataOpt,
    spec: SpecOpt,
    on_invalid: Annotated[OnInvalid, typer.Option(help="fail or quarantine invalid rows.")] = OnInvalid.fail,
    workdir: WorkOpt = None,
) -> None:
    """Stage 1: validate, split, grid-search the model family (CHURN_MODEL_FAMILY), pick the threshold, fit the
    baseline."""
    settings = _settings()
    c = _fit(data, spec, on_invalid, settings)
    path = c.save(_workdir(workdir, settings))
    console.print(f"trained in {c.trained.fit_seconds:.1f} s; candidate saved to {path}")


@app.command("evaluate")
def evaluate_cmd(workdir: WorkOpt = None, report_dir: ReportOpt = None) -> None:
    """Stage 2: metrics on the untouched test rows, bootstrap intervals, plots."""
    settings = _settings()
    c = pipeline.assess(pipeline.Candidate.load(_workdir(workdir, settings)), settings)
    _show_report(c)
    c.save(_workdir(workdir, settings))
    console.print(f"report: {pipeline.write_report(c, report_dir or settings.home / 'reports')}")


@app.command("gate")
def gate_cmd(workdir: WorkOpt = None) -> None:
    """Stage 3: decide promotion (thresholds, no loss against the champion on the same rows, and optionally
    beating the logistic baseline)."""
    settings = _settings()
    _connect(settings)
    c = pipeline.decide(pipeline.Candidate.load(_workdir(workdir, settings)), settings)
    c.save(_workdir(workdir, settings))
    _show_gate(c)
    if not c.decision or not c.decision.passed:
        raise typer.Exit(1)


@app.command("register")
def register_cmd(workdir: WorkOpt = None, report_dir: ReportOpt = None) -> None:
    """Stage 4: log the run, register a version, move `champion` only if the gate passed."""
    settings = _settings()
    experiment_id = _connect(settings)
    c = _register(pipeline.Candidate.load(_workdir(workdir, settings)), settings, experiment_id)
    _finish(c, settings, report_dir)


def _register(c: pipeline.Candidate, settings: TrainSettings, experiment_id: str) -> pipeline.Candidate:
    """Register (and promote, as a compare-and-set); show the gate again if the champion moved meanwhile."""
    gated = c.decision
    try:
        c = pipeline.register(c, settings, experiment_id)
    except registry.PromotionLockTimeoutError as exc:
        console.print(f"[red]not registered:[/red] {exc}")
        raise typer.Exit(3) from exc
    if c.decision is not gated:
        console.print("the champion moved since the gate: gated again against it")
        _show_gate(c)
    return c


def _finish(c: pipeline.Candidate, settings: TrainSettings, report_dir: Path | None) -> None:
    report = pipeline.write_report(c, report_dir or settings.home / "reports")
    assert c.decision is not None
    where = settings.resolved_tracking_uri
    alias = settings.alias
    if c.decision.passed:
        out.print(f"registered {c.spec.name} version {c.version} and moved alias {alias!r} to it")
    else:
        out.print(f"registered {c.spec.name} version {c.version}; gate failed, {alias!r} unchanged")
    out.print(f"  load it:     models:/{c.spec.name}@{alias}")
    if c.decision.passed and alias == registry.CHALLENGER:
        out.print(f"  promote it:  python -m training promote --predictor <URL>  (after {MIN_SHADOW:,} shadow rows)")
    out.print(
        f"  MLflow:      {where}  (mlflow ui --backend-store-uri {where})"
        if settings.embedded
        else f"  MLflow:      {where}"
    )
    out.print(f"  eval report: {report}")
    if not c.decision.passed:
        raise typer.Exit(1)


@app.command()
def run(
    data: DataOpt = Path("data/raw/churn.csv"),
    spec: SpecOpt = Path("data/churn.spec.yaml"),
    on_invalid: Annotated[OnInvalid, typer.Option(help="fail or quarantine invalid rows.")] = OnInvalid.fail,
    report_dir: ReportOpt = None,
) -> None:
    """Validate, train, evaluate, gate and register in one go."""
    settings = _settings()
    experiment_id = _connect(settings)  # fail fast, before minutes of training
    c = _fit(data, spec, on_invalid, settings)
    c = pipeline.assess(c, settings)
    _show_report(c)
    c = pipeline.decide(c, settings)
    _show_gate(c)
    c = _register(c, settings, experiment_id)
    _finish(c, settings, report_dir)


@app.command()
def rollback(
    to: Annotated[str | None, typer.Option(help="Version to move 'champion' to [default: previous champion].")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Allow a --to version that did not pass the gate (prints a warning).")
    ] = False,
    spec: SpecOpt = Path("data/churn.spec.yaml"),
) -> None:
    """Move the 'champion' alias back to the previous champion (or to --to: a version that passed the gate)."""
    settings = _settings()
    _connect(settings)
    name = _spec(spec).name
    try:
        moved = registry.rollback(name, to, force=force)
    except (ValueError, MlflowException, registry.PromotionLockTimeoutError) as exc:
        console.print(f"[red]rollback failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if not moved.gate_passed:
        console.print(
            f"[yellow]warning:[/yellow] version {moved.after} did not pass the gate; --force moved 'champion' to it"
        )
    out.print(f"{name}: champion moved from version {moved.before} to {moved.after}")


@app.command()
def champion(spec: SpecOpt = Path("data/churn.spec.yaml")) -> None:
    """Print the champion's version; exit 1 when there is none (e.g. to train only on a first run)."""
    settings = _settings()
    _connect(settings)
    version = registry.champion(_spec(spec).name)
    if version is None:
        console.print("no champion registered")
        raise typer.Exit(1)
    out.print(version.version)


@app.command()
def feedback(
    labels: Annotated[Path, typer.Option(help="CSV with the columns prediction_id,label (0 stayed, 1 churned).")],
    url: Annotated[str, typer.Option(help="A predictor's base URL, e.g. http://127.0.0.1:8080.")],
    chunk: Annotated[
        int, typer.Option(min=1, help="Outcomes per request (at most the predictor's CHURN_MAX_ROWS).")
    ] = 1000,
    spec: SpecOpt = Path("data/churn.spec.yaml"),
) -> None:
    """Send labelled outcomes to a predictor; exit 1 on invalid rows (nothing sent) or refused ones, 2 when the
    predictor cannot be reached. Outcomes it counted before are skipped, so a re-run is safe."""
    from training import feedback as feedback_stage

    name = _spec(spec).name
    try:
        rows = feedback_stage.read_labels(labels)
        sent = feedback_stage.send(url, name, rows, chunk=chunk)
    except (feedback_stage.LabelsInvalidError, feedback_stage.FeedbackRejectedError) as exc:
        console.print(f"[red]{exc}[/red]")
        if exc.problems:
            table = Table(title="refused outcomes")
            for col in ("line", "field", "value", "rule"):
                table.add_column(col)
            for p in exc.problems[:MAX_LISTED]:
                table.add_row(str(p.line), p.field, _shown(str(p.value)), p.rule)
            console.print(table)
        if isinstance(exc, feedback_stage.FeedbackRejectedError):
            console.print(f"counted before the refusal: {exc.sent.accepted:,} outcome(s)")
        raise typer.Exit(1) from exc
    except requests.RequestException as exc:
        console.print(f"[red]cannot send feedback to {url}:[/red] {exc}")
        raise typer.Exit(2) from exc
    versions = ", ".join(f"version {v}: {n:,}" for v, n in sorted(sent.by_model_version.items())) or "none"
    out.print(f"counted {sent.accepted:,} outcome(s) ({versions}); {sent.replayed:,} counted before, skipped")


@app.command()
def promote(
    predictor: Annotated[
        list[str],
        typer.Option(help="A predictor replica's base URL; repeat it for every replica (their counts add up)."),
    ],
    min_shadow_rows: Annotated[
        int, typer.Option(min=0, help="Rows the challenger must have scored in shadow.")
    ] = MIN_SHADOW,
    min_labelled_rows: Annotated[
        int, typer.Option(min=1, help="Labelled rows each version needs for realized quality to be compared.")
    ] = 200,
    max_drop: Annotated[
        float, typer.Option(min=0, max=1, help="Largest F1 loss (and Brier rise) allowed against the champion.")
    ] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Promote a challenger that did not pass the gate.")] = False,
    from_alias: Annotated[
        str, typer.Option("--from", help="The alias to promote; only 'challenger' is scored in shadow.")
    ] = registry.CHALLENGER,
    spec: SpecOpt = Path("data/churn.spec.yaml"),
) -> None:
    """Move 'champion' to the 'challenger' version on live evidence from the predictors; exit 1 when refused."""
    from training import promote as promote_stage

    if from_alias != registry.CHALLENGER:
        console.print(f"[red]--from {from_alias!r}:[/red] only the 'challenger' alias is scored in shadow")
        raise typer.Exit(2)
    settings = _settings()
    _connect(settings)
    name = _spec(spec).name
    current, shadow = registry.champion(name), registry.challenger(name)
    if current is None or shadow is None:
        console.print(
            f"[red]nothing to promote:[/red] {name!r} has no {'champion' if current is None else 'challenger'}"
        )
        raise typer.Exit(1)
    try:
        evidence = promote_stage.gather(predictor, name, current.version, shadow.version)
    except requests.RequestException as exc:
        console.print(f"[red]cannot read the predictors' quality:[/red] {exc}")
        raise typer.Exit(2) from exc
    decision = promote_stage.decide(
        evidence, min_shadow_rows=min_shadow_rows, min_labelled_rows=min_labelled_rows, max_drop=max_drop
    )
    table = Table(title=f"promote challenger {shadow.version} over champion {current.version}")
    table.add_column("rule")
    for reason in decision.reasons:
        table.add_row(Text(reason, style="red" if reason.startswith("FAIL") else "green"))
    out.print(table)
    if not decision.passed:
        console.print(
            "[red]not promoted:[/red] the challenger has not shown it is at least as good; champion unchanged"
        )
        raise typer.Exit(1)
    try:
        moved = registry.promote_challenger(
            name, champion_was=current.version, challenger_was=shadow.version, force=force
        )
    except (registry.RollbackRefusedError, registry.PromotionLockTimeoutError) as exc:
        console.print(f"[red]not promoted:[/red] {exc}")
        raise typer.Exit(1) from exc
    if not moved.gate_passed:
        console.print(f"[yellow]warning:[/yellow] version {moved.after} did not pass the gate; --force promoted it")
    out.print(f"{name}: champion moved from version {moved.before} to {moved.after} ({decision.basis} quality)")


def _read_current(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """A CSV, or the predictor's inference log (a file or a folder of them)."""
    if path.suffix in (".jsonl", ".json") or path.is_dir():
        rows = [row for f in inference_log.files(path) for row in inference_log.features(f.read_text().splitlines())]
        # As text, the way a CSV reads: object dtype keeps 40 from becoming "40.0" next to a null, null stays empty.
        frame = pd.DataFrame(rows, columns=spec.feature_names, dtype=object).map(
            lambda v: None if v is None else str(v)
        )
        return _checked(validate_frame(frame, spec, require_target=False), path)
    return _checked(validate_file(path, spec, require_target=False), path)


def _checked(result: ValidationResult, path: Path) -> pd.DataFrame:
    if not result.ok:
        _print_failures(result, f"{path}: invalid rows")
        raise typer.Exit(2)
    return result.valid


@app.command()
def drift(
    current: Annotated[
        Path, typer.Option(help="Current data: CSV, or the predictor's inference log (file or folder).")
    ],
    reference: Annotated[str, typer.Option(help="'champion' (its logged training sample) or a CSV.")] = "champion",
    spec: SpecOpt = Path("data/churn.spec.yaml"),
    out_dir: Annotated[Path | None, typer.Option(help="Report folder [default: <home>/reports/drift].")] = None,
) -> None:
    """Data drift of current data against the training reference; exit 1 when too many features drifted."""
    settings = _settings()
    experiment_id = _connect(settings)
    the_spec = _spec(spec)
    if reference == "champion":
        version = registry.champion(the_spec.name)
        if version is None:
            console.print(f"[red]no champion registered for {the_spec.name!r}[/red]")
            raise typer.Exit(2)
        ref = registry.reference_sample(version)
    else:
        ref = _checked(validate_file(Path(reference), the_spec, require_target=False), Path(reference))
    cur = _read_current(current, the_spec)
    from training import drift as drift_stage

    with _progress() as progress:
        progress.add_task("Evidently drift report", total=None)
        result, files = drift_stage.run(
            ref,
            cur,
            the_spec,
            p_value=settings.drift_p_value,
            max_share=settings.drift_share,
            out_dir=out_dir or settings.home / "reports" / "drift",
        )
    table = Table(title=f"drift of {current} ({len(cur):,} rows) vs {reference} ({len(ref):,} rows)")
    for col in ("feature", "test", "p-value", "drifted", "PSI"):
        table.add_column(col)
    for c in result.columns:
        table.add_row(
            c["column"], c["method"], f"{c['p_value']:.4g}", "yes" if c["drifted"] else "no", f"{c['psi']:.3f}"
        )
    out.print(table)
    out.print(f"drifted share {result.share:.2f} (limit {result.max_share:.2f}); reports: {', '.join(map(str, files))}")
    registry.log_drift(experiment_id, result.columns, result.share, files)
    if result.drifted:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except MlflowException as exc:
        console.print(f"[red]MLflow error:[/red] {exc.message}")
        sys.exit(3)
