from core.errors import ApplicationError, InvalidInputError, NotAuthenticatedError

USERNAME_TAKEN = "This username is taken."
EMAIL_TAKEN = "This email is already registered."


class UserBannedError(ApplicationError):
    code = "user_banned"
    status = 403
    message = "This account is banned."


class CredentialsInvalidError(NotAuthenticatedError):
    code = "credentials_invalid"
    message = "The username or password is wrong."


class TokenInvalidError(NotAuthenticatedError):
    code = "token_invalid"
    message = "The token is invalid."


class TokenExpiredError(NotAuthenticatedError):
    code = "token_expired"
    message = "The token has expired."


class SessionRevokedError(NotAuthenticatedError):
    code = "token_invalid"
    message = "This refresh token is no longer valid; log in again."


class AccountTakenError(InvalidInputError):
    """The username or email belongs to another account (found by the database's unique
    constraints when a concurrent registration won): a field error like the serializer's."""

    def __init__(self, *, field: str, message: str) -> None:
        super().__init__(details={"fields": {field: [message]}})
