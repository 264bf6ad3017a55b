"""The one kind of error a user can fix."""


class UserError(ValueError):
    """Bad input (flags, data, checkpoints): the message names the problem and the fix."""
