"""The registry of background jobs: each domain registers its jobs here; the worker
(`docstore worker`, or in-process under `docstore serve`) runs them on their schedule."""

from __future__ import annotations

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
