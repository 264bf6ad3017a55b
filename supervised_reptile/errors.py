"""The one kind of error a user can fix."""


class UserError(ValueError):
    """Bad input (flags, data, checkpoints): the message names the problem and the fix."""


class WrongType(UserError, TypeError):
    """An argument of the wrong kind (a tuple where a task source belongs): a TypeError, and a
    UserError like the rest."""
