from scoreboard.errors import ApplicationError


class UserBannedError(ApplicationError):
    code = "user_banned"
    status = 403
    message = "This account is banned."
