"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class UserError(ValueError):
    """Bad input from the user (a file, a folder, an argument); the message names it."""
