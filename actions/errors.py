"""Why a completion is refused: one error, one stable code, one status."""

from core.errors import ApplicationError, ConflictError, NotFoundError


class ActionNotFoundError(NotFoundError):
    code = "action_not_found"
    message = "No active action type has this id."


class TokenInvalidError(ApplicationError):
    code = "token_invalid"
    status = 400
    message = "The action token is not valid."


class TokenExpiredError(ApplicationError):
    code = "token_expired"
    status = 400
    message = "The action token has expired; start the action again."


class TokenMismatchError(ApplicationError):
    code = "token_mismatch"
    status = 400
    message = "The action token was issued for another user or action."


class TokenReplayedError(ConflictError):
    code = "token_replayed"
    message = "This action token has already been used."


class TooEarlyError(ConflictError):
    code = "too_early"
    message = "The action was completed before its minimum duration."


class CooldownActiveError(ConflictError):
    code = "cooldown_active"
    message = "This action is cooling down; try again later."


class DailyCapReachedError(ConflictError):
    code = "daily_cap_reached"
    message = "The daily limit for this action has been reached."


class ActionInactiveError(ConflictError):
    code = "action_inactive"
    message = "This action type is no longer active."


class FraudBlockedError(ApplicationError):
    code = "fraud_blocked"
    status = 403
    message = "This completion was refused by the fraud rules."


class IdempotencyKeyReusedError(ConflictError):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request body."


class IdempotencyInProgressError(ConflictError):
    code = "idempotency_in_progress"
    message = "A request with this Idempotency-Key is still being processed; retry shortly."
