"""Commands that serve or move data: sync (the spool into MLflow), proxy (Optuna's gRPC
storage proxy), ui (a lean MLflow UI)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import click

from sweep.cli.group import cli
from sweep.cli.hints import UI_PORT
from sweep.cli.options import storage_option, tracking_option
from sweep.errors import FatalError, SpecError
from sweep.keys import ROLE_STUDY, ROLE_TAG, RUNS_VIEW_TAG
from sweep.redact import mask_url


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a blocking server the way Ctrl-C does. (Workers instead use
    ``sweep.interrupt``, which stops only at safe points.)"""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@cli.command()
@tracking_option(default=None, help="Replay into this MLflow store (env MLFLOW_TRACKING_URI; "
                                     "default: the store each run was meant for).")
@storage_option(help="Optuna storage whose trials get the new MLflow run ids "
                     "(env SWEEP_STORAGE).")
def sync(tracking_uri: str | None, storage: str) -> None:
    """Replay trial runs spooled while MLflow was unreachable ($SWEEP_SPOOL_DIR, default
    ./sweep-spool), each exactly once."""
    from sweep.results.queries import link_runs
    from sweep.tracking.spool import pending, spooled_studies
    from sweep.tracking.sync import sync as replay_all

    if not pending():
        click.echo("nothing to sync.")
        return
    # The new run ids go into the studies' trials: without the storage that holds those
    # studies they would be lost for good once the spool is replayed and deleted.
    wanted = spooled_studies()
    if wanted:
        import optuna

        from sweep.storage.connect import quiet_optuna, read_storage

        quiet_optuna()
        try:
            held = set(optuna.get_all_study_names(read_storage(storage)))
        except SpecError:  # no such SQLite file: the same answer, without creating it
            held = set()
        missing = sorted(wanted - held)
        if missing:
            raise SpecError("--storage", f"does not hold the studies of the spooled runs "
                            f"({', '.join(missing)}); pass the storage they live in",
                            mask_url(storage))
    replayed = replay_all(tracking_uri)
    linked = link_runs(storage, replayed)
    ops = sum(r.operations for r in replayed)
    click.echo(f"synced {len(replayed)} runs ({ops} operations); linked {linked} trials.")


@cli.command()
@storage_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. The proxy has no authentication and no TLS: "
                   "bind another interface only inside a private network.")
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True)
def proxy(storage: str, host: str, port: int) -> None:
    """Optuna's gRPC storage proxy, for clusters larger than the database's connection
    limit: workers use --storage grpc://HOST:PORT and share this process's connections.
    The exact study budget is enforced here."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        # Whoever reaches the port can read and rewrite every study (README, Security).
        click.echo(f"warning: the proxy on {host} has no authentication and no TLS; anyone "
                   "who reaches this port can read and change every study: keep it inside a "
                   "private network.", err=True)
    import optuna

    from sweep.storage.connect import PROXY_THREADS, open_storage, quiet_optuna
    from sweep.storage.proxy import serve

    if storage.startswith("grpc://"):
        raise SpecError("--storage", "the proxy serves a database, not another proxy", storage)
    quiet_optuna()
    # Optuna's documentation asks for its cached storage in front of an RDB storage: the
    # proxy then answers most reads from memory. Our budget lock sits below the cache
    # (`_create_new_trial`), so it still holds.
    backend = optuna.storages.get_storage(open_storage(storage, threads=PROXY_THREADS))
    click.echo(f"serving {mask_url(storage)} on grpc://{host}:{port} (Ctrl-C stops)", err=True)
    with sigterm_as_interrupt():
        try:
            serve(backend, host, port, PROXY_THREADS)
        except KeyboardInterrupt:
            click.echo("proxy stopped.", err=True)


@cli.command()
@tracking_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (the UI has no login: keep it local).")
@click.option("--port", type=click.IntRange(1, 65535), default=UI_PORT, show_default=True)
def ui(tracking_uri: str, host: str, port: int) -> None:
    """Start a lean MLflow UI for this tracking store and print each study's runs view."""
    from sweep.tracking.links import runs_view_url

    if tracking_uri.startswith(("http://", "https://")):
        click.echo(f"this store is served by a tracking server: open {mask_url(tracking_uri)}")
        return
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if _answers(base, "/"):
        # Else the links would open whatever answers there, not this store.
        raise FatalError(f"something already answers on {base}: pass another --port")
    studies = _studies_in(tracking_uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
               "--registry-store-uri", tracking_uri, "--host", host, "--port", str(port),
               "--workers", "1", "--uvicorn-opts", "--no-access-log --log-level warning"]
    # One web worker and no job runner: the UI of a sweep needs neither (MLflow's default
    # started 16 processes, about 3.7 GB, on a 2-core machine). Its start-up notes and a
    # line per HTTP request are left out; its warnings and errors are passed on.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_LOGGING_LEVEL": "WARNING",
           "PYTHONWARNINGS": "ignore::DeprecationWarning,"
                             "ignore:starlette.middleware.wsgi is deprecated"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    threading.Thread(target=_pass_on, args=(server, said), daemon=True).start()
    with sigterm_as_interrupt():
        try:
            # The links once they open something: MLflow takes seconds to answer.
            while not _answers(base):
                if server.poll() is not None:
                    raise FatalError(f"the MLflow UI did not start: "
                                     f"{said[-1] if said else 'exit ' + str(server.returncode)}")
                time.sleep(0.2)
            for name, experiment_id, query in studies:
                click.echo(f"  {name}: {runs_view_url(base, experiment_id, query)}")
            click.echo(f"MLflow UI for {mask_url(tracking_uri)} on {base} (Ctrl-C stops it)",
                       err=True)
            sys.stdout.flush()
            server.wait()
            if server.returncode:
                raise FatalError(f"the MLflow UI stopped: "
                                 f"{said[-1] if said else 'exit ' + str(server.returncode)}")
        except KeyboardInterrupt:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a server that ignores SIGTERM is not left
                server.kill()
                server.wait()
            click.echo("MLflow UI stopped.", err=True)


# MLflow's own start-up notes (none of them a user's to act on, for a local UI).
_NOISE = ("Security middleware enabled with default settings",
          "Registry store URI not provided")


def _pass_on(server: subprocess.Popen, said: list[str]) -> None:
    """MLflow's output on our stderr, its start-up notes left out; the last lines are
    kept for the error if it exits."""
    for line in server.stdout:
        if any(note in line for note in _NOISE):
            continue
        line = mask_url(line)  # an error may quote the store's URL
        said.append(line.strip())
        del said[:-5]
        sys.stderr.write(line)


def _answers(base: str, path: str = "/health") -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}{path}", timeout=2) as answer:
            return answer.status == 200
    except urllib.error.HTTPError:
        return path == "/"  # something answers, if not with a page
    except OSError:
        return False


def _studies_in(tracking_uri: str) -> list[tuple[str, str, str | None]]:
    """(experiment name, id, runs-view query) of the experiments that hold a regsweep
    study run; the query is the one the study recorded on its experiment."""
    from mlflow.entities import ViewType

    from sweep.tracking.client import mlflow_client

    client = mlflow_client(tracking_uri)
    found = []
    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        if client.search_runs([experiment.experiment_id], max_results=1,
                              filter_string=f"tags.`{ROLE_TAG}` = '{ROLE_STUDY}'"):
            found.append((experiment.name, experiment.experiment_id,
                          experiment.tags.get(RUNS_VIEW_TAG)))
    return found
