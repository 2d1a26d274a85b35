"""Partner Center: the REST client, its tokens, its request budget and its typed errors."""

from .auth import (
    AppTokenProvider,
    RefreshTokenExpired,
    RefreshTokenVault,
    TokenProvider,
    UserTokenProvider,
)
from .budget import LocalRequestBudget, RequestBudget
from .client import PartnerCenterClient
from .transport import RequestStats, RetryPolicy
from .clouds import CHINA, CLOUDS, PUBLIC, Cloud, cloud_named
from .errors import (
    AuthenticationError,
    BadRequestError,
    ContinuationExpiredError,
    CustomerNotFoundError,
    DeadlineExceeded,
    ForbiddenError,
    IncompleteListError,
    MalformedResponseError,
    MfaRequiredError,
    NotFoundError,
    PartnerCenterError,
    RelationshipEndedError,
    ThrottledError,
    TransientError,
    WrongTokenAudienceError,
)
from .models import (
    AuditRecord,
    Customer,
    CustomerPage,
    MalformedItem,
    NextLink,
    is_guid,
    is_known_relationship_kind,
    is_synced_kind,
    normalize_relationship_kind,
)

__all__ = [
    "AppTokenProvider", "RefreshTokenExpired", "RefreshTokenVault", "TokenProvider", "UserTokenProvider",
    "LocalRequestBudget", "RequestBudget", "PartnerCenterClient", "RequestStats", "RetryPolicy",
    "CHINA", "CLOUDS", "PUBLIC", "Cloud", "cloud_named",
    "AuthenticationError", "BadRequestError", "ContinuationExpiredError", "CustomerNotFoundError",
    "DeadlineExceeded", "ForbiddenError", "IncompleteListError", "MalformedResponseError", "MfaRequiredError",
    "NotFoundError", "PartnerCenterError", "RelationshipEndedError", "ThrottledError", "TransientError",
    "WrongTokenAudienceError",
    "AuditRecord", "Customer", "CustomerPage", "MalformedItem", "NextLink", "is_guid",
    "is_known_relationship_kind", "is_synced_kind", "normalize_relationship_kind",
]
