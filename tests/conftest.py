"""Shared fixtures: a temporary working folder, a temporary Optuna storage, one MLflow
store per test session (creating an MLflow database takes seconds), tiny study files."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# The `made` study of hand-made trials, for the results' tests and the CLI's.
pytest_plugins = ["hand_made"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_STUDY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "synthetic", "n_samples": 160, "shape": [6], "n_classes": 3,
             "validation_split": 0.25, "test_split": 0.25},
    "model": {"layers": [
        {"Dense": {"units": 8, "activation": "relu"}},
        {"Dropout": {"rate": 0.1}},
        {"Dense": {"units": 3, "activation": "softmax"}},
    ]},
    "train": {"epochs": 2, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01,
              "loss": "sparse_categorical_crossentropy"},
    "search": {
        "targets": ["kernel"],
        "placement": {"choices": ["none", "first", "all"]},
        "coefficients": "shared",
        "l1": {"low": 1.0e-5, "high": 1.0e-2, "log": True, "allow_zero": True},
        "l2": {"low": 1.0e-5, "high": 1.0e-2, "log": True},
        "baselines": [],  # tests that are about baselines ask for them
    },
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "sampler": "tpe",
    "pruner": "none",
    "budget": {"n_trials": 3},
}


def tiny_study(**overrides: Any) -> dict[str, Any]:
    """The tiny study with top-level keys replaced (``None`` deletes a key)."""
    study = copy.deepcopy(TINY_STUDY)
    for key, value in overrides.items():
        if value is None:
            study.pop(key, None)
        else:
            study[key] = value
    return study


def write_study(path: Path, study: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _absl_handler_on_the_real_stderr() -> None:
    """absl's log handler (created when TensorFlow is imported) keeps the sys.stderr of
    that moment, in a test session one of pytest's capture streams. MLflow 3.5's schema
    migration calls logging.config.fileConfig, which closes every handler, and absl closes
    its stream unless it is the sys.stderr of *that* moment: inside a CliRunner it is
    not, so pytest's own capture stream got closed and the session died ("lost
    sys.stderr", found by `make test-min`). Outside tests the stream is the real stderr,
    which absl never closes; here too."""
    import sys

    logging_module = sys.modules.get("absl.logging")
    handler = getattr(logging_module, "_absl_handler", None)
    python_handler = getattr(handler, "python_handler", None)
    if python_handler is not None and python_handler.stream is not sys.__stderr__:
        python_handler.setStream(sys.__stderr__)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, as a user would, with no store URLs in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEP_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sweep.db'}"


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}"


# ---------------------------------------------------------------- real servers
@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """The PostgreSQL server of this test session: ``$SWEEP_TEST_POSTGRES_URL`` if set (and
    then it must answer: a failure, never a skip), else a throwaway server of its own
    (tests/embedded_pg.py), removed at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from sweep.locations import normalize_storage_url

    given = os.environ.get("SWEEP_TEST_POSTGRES_URL")
    if given:
        url = make_url(normalize_storage_url(given))
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:
            pytest.fail(f"SWEEP_TEST_POSTGRES_URL={url.render_as_string()} does not "
                        f"answer: {error}")
        finally:
            engine.dispose()
        yield url.render_as_string(hide_password=False)
        return
    from embedded_pg import embedded_server

    with embedded_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url(postgres_base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(postgres_base_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"sweep_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def wait_for(predicate, timeout: float = 180.0, every: float = 0.3):
    """Poll ``predicate`` until it returns something true (returned), or fail."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def answers(url: str) -> bool:
    """Whether an HTTP server answers 200 at ``url`` now."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on a free loopback port; can be stopped and restarted on
    the same port and store (to simulate an outage)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 90.0) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "artifacts")],
            stdout=subprocess.DEVNULL, stderr=self._log_file(),
            # No job runner and its seven consumers: trials need none of it (as `sweep ui`).
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            # Its own process group: `mlflow server` runs uvicorn/gunicorn children, which
            # some MLflow versions (3.5) leave serving when only the parent is stopped.
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not start: {self.log()[-2000:]}")

    def _log_file(self):
        self._log = (self.folder / "server.log").open("ab")  # closed in stop()
        return self._log

    def stop(self) -> None:
        import signal

        if self.process is not None:
            import os

            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except Exception:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_py_function_builder(folder: Path, module: str, body: str) -> None:
    """A builder module ``<module>:build``: Dense → a layer whose every step runs ``body``
    (the source of ``def run(x)``) through ``tf.py_function``, i.e. inside TensorFlow's
    runtime, where no Keras callback and no Python signal handler runs → Dense."""
    (folder / f"{module}.py").write_text(f'''
import os
import time

import keras
import tensorflow as tf

{body}

@keras.saving.register_keras_serializable(package="{module}")
class Step(keras.layers.Layer):
    def call(self, x):
        y = tf.py_function(run, [x], Tout=x.dtype)
        y.set_shape(x.shape)
        return y


def build(input_shape, n_classes):
    inputs = keras.Input(shape=input_shape)
    x = Step()(keras.layers.Dense(8, activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))
''')


def write_blocking_builder(folder: Path) -> None:
    """The first training step blocks for an hour (once: a marker file remembers, in
    ``$BLOCK_MARKER_DIR``): a trial that is surely running when a test acts on it."""
    write_py_function_builder(folder, "blocking_models", '''
def run(x):
    marker = os.path.join(os.environ["BLOCK_MARKER_DIR"], "blocked-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(3600)
    return x
''')


def write_slow_builder(folder: Path, seconds: float) -> None:
    """Every step (training and validation) sleeps ``seconds``: a trial whose length does
    not depend on the machine's speed, so that a test can act while it is surely running."""
    write_py_function_builder(folder, "slow_models", f'''
def run(x):
    time.sleep({seconds})
    return x
''')
