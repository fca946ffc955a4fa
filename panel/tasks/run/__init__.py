"""Lifecycle tasks as the worker runs them; ``job.run_task`` is the entry point."""
