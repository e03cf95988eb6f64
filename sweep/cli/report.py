"""`sweep report`: the comparison per placement, written to a folder and logged on the
study's MLflow run."""

from __future__ import annotations

import click

from sweep.cli.group import cli
from sweep.cli.hints import ui_hint
from sweep.cli.options import output_option, progress_option, storage_option, tracking_option


@cli.command()
@click.argument("study_name")
@storage_option()
@tracking_option()
@output_option(folder=True, old="--out",
               help="Folder for the report files  [default: ./report-STUDY_NAME/]")
@click.option("--confirm/--no-confirm", default=None,
              help="Re-train the best report.confirm_top configurations and the baseline "
                   "over seeds.confirm seeds first (needs TensorFlow; a stored confirmation "
                   "is reused)  [default: confirm when report.confirm_top > 0]")
@progress_option
def report(study_name: str, storage: str, tracking_uri: str, output: str | None,
           confirm: bool | None, no_progress: bool) -> None:
    """The comparison per placement (terminal, Markdown, HTML) and its pictures, written to
    -o/--output and logged on the study's MLflow parent run under report/."""
    from sweep import api
    from sweep.answers.painter import Painter
    from sweep.answers.render import print_terminal

    # The painter imports the drawing libraries while the study is loaded and read.
    with Painter() as painter:
        study = api.load(study_name, storage=storage, tracking_uri=tracking_uri,
                         writable=confirm is not False)
        out = study.report(output, confirm=confirm, show_progress=not no_progress,
                           show=print_terminal, painter=painter,
                           on_note=lambda note: click.echo(f"note: {note}", err=True))
    click.echo(f"wrote the report to {out}/ ({out / 'report.html'}) and logged it on the "
               "study's MLflow run under report/.")
    click.echo("inspect it with: "
               f"{ui_hint(tracking_uri, study.spec.experiment_name, study.optuna, study.spec)}")
