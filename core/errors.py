"""The base of every error caused by what a person gave: a dataset, plans, options, a checkpoint.

Each carries `problems`, every reason found, one readable line each, so that the command line prints
them all and the service returns them all in one 4xx answer. Errors that are not a user's doing (a bug,
a dying worker) do not derive from it and are reported as such.
"""

from __future__ import annotations


class ProblemsError(ValueError):
    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
