"""The lock that keeps GPU jobs (generation, Extras, extension jobs) one at a time."""

import threading

queue_lock = threading.Lock()


def wrap_queued_call(func):
    def f(*args, **kwargs):
        with queue_lock:
            return func(*args, **kwargs)

    return f
