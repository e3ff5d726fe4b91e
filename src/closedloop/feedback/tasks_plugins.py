"""Job handlers (registered with closedloop.jobs.runtime.register_job)."""
