"""Domain errors. The HTTP layer maps each class to one status code, in one place."""

from __future__ import annotations

# The reply header naming the kind of error where one status stands for several (a 409
# that only says "done before" versus one that blocks a delete).
ERROR_CODE_HEADER = "X-DTBase-Error"


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """A row named in the request does not exist. DTBase answers 400 for these."""

    status_code = 400


class Missing(DomainError):
    """A resource addressed by the URL itself does not exist."""

    status_code = 404


class Conflict(DomainError):
    """A duplicate, or a delete blocked by rows that still depend on the target."""

    status_code = 409


class AlreadyExists(Conflict):
    """The thing to create exists already: for idempotent set-up, the step was done before.

    Told apart from other conflicts on the wire by the `X-DTBase-Error: already_exists`
    header, so that clients need not match the English `detail`."""

    code = "already_exists"


class Invalid(DomainError):
    """The body is well-formed but its values do not fit (wrong datatype, lengths...).

    Answered as 422 in pydantic's list shape, naming the offending field.
    """

    status_code = 422

    def __init__(
        self,
        detail: str,
        loc: tuple[str | int, ...] = ("body",),
        *,
        more: list[tuple[tuple[str | int, ...], str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.loc = loc
        # Further offending fields, when one check finds several (every bad reading).
        self.more = more or []

    @property
    def items(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every (loc, message) pair, the first one first."""
        return [(self.loc, self.detail), *self.more]


class Unauthorized(DomainError):
    status_code = 401

    def __init__(self, detail: str, *, challenge: bool = False) -> None:
        super().__init__(detail)
        self.challenge = challenge


class Forbidden(DomainError):
    status_code = 403


class UpstreamTimeout(DomainError):
    status_code = 504
