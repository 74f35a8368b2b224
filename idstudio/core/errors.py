"""Errors a user can cause. Their message is one sentence that says what to do."""


class UserError(Exception):
    """Bad input or a state the user can fix. Shown as-is, never as a traceback."""


class JobCancelled(Exception):
    """Raised inside a job when its context was cancelled; the job discards its work."""
