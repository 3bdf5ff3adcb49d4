from scoreboard.errors import ApplicationError, NotAuthenticatedError


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
