"""The registry of background jobs: each domain registers its jobs here; the worker
(`docstore worker`, or in-process under `docstore serve`) runs them on their schedule."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docstore.services import Services


@dataclass(frozen=True)
class Job:
    """A named periodic task; `run` does one pass and returns a summary for the log."""

    name: str
    interval_seconds: float
    run: Callable[[Services], dict[str, Any]]


JOBS: dict[str, Job] = {}


def register(job: Job) -> Job:
    """Add a job to the registry (by name; registering twice replaces it)."""
    JOBS[job.name] = job
    return job


WAKE_KEY = "docstore.jobs.wake"


def wake_event(svc: Services) -> threading.Event:
    """The event this process's worker loop waits on between passes (one per services)."""
    event = svc.extensions.get(WAKE_KEY)
    if not isinstance(event, threading.Event):
        event = svc.extensions.setdefault(WAKE_KEY, threading.Event())
    return event


WOKEN_KEY = "docstore.jobs.woken"


def wake(svc: Services, job: str | None = None) -> None:
    """Start this process's worker's next pass now; with `job`, that job runs in it even if
    its interval has not passed (e.g. a mail was just queued: `mail.deliver`)."""
    if job is not None:
        woken: set[str] = svc.extensions.setdefault(WOKEN_KEY, set())
        woken.add(job)
    wake_event(svc).set()


def take_woken(svc: Services) -> set[str]:
    """The jobs named by `wake` since the last call (and forget them)."""
    woken: set[str] = svc.extensions.get(WOKEN_KEY) or set()
    taken = set(woken)
    woken.difference_update(taken)
    return taken
