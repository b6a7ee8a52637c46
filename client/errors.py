"""The centre's own errors: what cannot be used, and what it declines. Both carry a
sentence for the centre's operators; what the ministry is told is a code and a fixed
sentence of ``common.protocol`` (``client.federation.centre_task.refusal_of``), never the detail."""

from __future__ import annotations

from common.errors import ExitCode, PerseveranceError
from common.protocol import Reason, Reply


class DataError(PerseveranceError):
    """A centre's data cannot be used. The message is one sentence for the operator."""

    exit_code = ExitCode.UNUSABLE


class CentreRefusal(PerseveranceError):
    """The centre declines a task (its privacy floor or budget, too few records).

    Parameters
    ----------
    detail : str
        The sentence for the centre's operators and its own log (may give numbers).
    reason : str
        The fixed sentence the ministry receives (``common.protocol.Reason``).
    code : Reply
        The reply code the ministry receives.
    """

    def __init__(self, detail: str, reason: str = Reason.LIFETIME_CAP,
                 code: Reply = Reply.REFUSED) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason
        self.code = code
