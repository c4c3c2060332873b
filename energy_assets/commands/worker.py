"""`energy worker`: a Celery worker for the platform's steps (ENERGY_EXECUTOR=celery), on this
machine or another that reaches the same PostgreSQL, broker and result backend.

The worker is dagster-celery's (`dagster-celery worker start`), given the platform's
environment (Dagster's instance, the warehouse, dbt's profile) and the Celery configuration the
runs use. It runs until Ctrl-C, SIGTERM or SIGHUP; a step it is executing then is finished
within the grace period, or goes back to its queue for another worker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from energy_assets.commands.processes import child_setup, on_stop_signals, stop_group
from energy_assets.scaleout import celery_config, queue_name
from energy_assets.settings import Settings, environment_with_path
from energy_assets.warehouse.postgres import write_private

BIN = Path(sys.executable).parent


def worker_command(config: Path, queues: list[str], name: str, concurrency: int) -> list[str]:
    """The `dagster-celery worker start` command line of a worker taking `queues`.

    dagster-celery passes each `-q` on as its own `-Q`, of which Celery keeps the last: the
    queues go as one comma-separated `-q`.
    """
    return [
        str(BIN / "dagster-celery"),
        "worker",
        "start",
        "--app",
        "dagster_celery.app",
        "--config-yaml",
        str(config),
        "--queue",
        ",".join(queues),
        "--name",
        name,
        "--",
        f"--concurrency={concurrency}",
    ]


def write_worker_config(settings: Settings) -> Path:
    """The executor's Celery config as dagster-celery's worker reads it (owner only: the
    broker's URL may carry a password)."""
    path = settings.dagster_home / "celery.yaml"
    text = yaml.safe_dump({"execution": {"config": celery_config(settings)}}, sort_keys=False)
    write_private(path, text)
    return path


def run_worker(settings: Settings, kinds: list[str], name: str, concurrency: int) -> int:
    """Serve the queues of `kinds` until stopped; the worker's exit status."""
    from energy_assets.commands.session import platform_session

    queues = [queue_name(settings.celery_queues, kind) for kind in kinds]
    with platform_session(settings, create=False):
        command = worker_command(write_worker_config(settings), queues, name, concurrency)
        env = environment_with_path(BIN)
        worker = subprocess.Popen(command, env=env, preexec_fn=child_setup, process_group=0)
        on_stop_signals(lambda *_: stop_group(worker.pid))
        return worker.wait()
