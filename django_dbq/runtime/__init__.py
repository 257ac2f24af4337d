"""Running jobs: the worker process, the executor of one job, the supervisor of
several worker processes, signal handling and the wake-up listener."""
