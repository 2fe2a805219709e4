"""`python -m upwell` is the `upwell` command."""

from .cli import entrypoint

entrypoint()
