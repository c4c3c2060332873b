"""Steps on Celery workers (ENERGY_EXECUTOR=celery): the queue each kind of step goes to, the
pool that caps the warehouse's load, and the Celery configuration that the runs (dagster-celery's
step executor) and `energy worker` share. Plain values and functions, no Dagster.

Only steps move: a run's own process stays where the run queue started it and hands each step
to the broker (RabbitMQ); a worker takes it, executes it against the same Dagster instance and
warehouse, and returns its events through the result backend (Redis).
"""

from __future__ import annotations

from energy_assets.settings import Settings

QUEUE_TAG = "dagster-celery/queue"
"""The op tag that names a step's Celery queue."""
DBT, ML = "dbt", "ml"
"""Kinds of steps, each with a queue: dbt builds (database-bound) and Python ML steps
(CPU-bound), so workers can be sized and placed for each."""
WAREHOUSE_POOL = "warehouse"
"""The Dagster concurrency pool of the steps that load the warehouse most (the dbt builds)."""


def queue_name(prefix: str, kind: str) -> str:
    """The Celery queue of `kind` steps (`energy-dbt`, `energy-ml`)."""
    return f"{prefix}-{kind}"


def step_tags(kind: str) -> dict[str, str]:
    """Op tags that send a step of `kind` to its queue (ignored by the in-process executor).
    Op tags are part of the definitions, so the queues' prefix is read when they are made."""
    return {QUEUE_TAG: queue_name(Settings.from_env().celery_queues, kind)}


def celery_config(settings: Settings) -> dict:
    """dagster-celery's executor config, which `energy worker` gives its workers too.

    A worker acknowledges a step only when it has finished it, and a step whose worker died
    (killed, out of memory, its machine gone) goes back to its queue, for another worker to run
    from its start: month steps replace their month, so running one twice is safe. Untagged
    steps (asset checks, the live forecast, the weather) go to the ML queue.
    """
    return {
        "broker": settings.celery_broker,
        "backend": settings.celery_backend,
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "task_default_queue": queue_name(settings.celery_queues, ML),
        },
    }
