"""Partner Center: the REST client, its tokens, its request budget and its typed errors."""

from .auth import (
    AppTokenProvider,
    RefreshTokenExpired,
    RefreshTokenVault,
    TokenProvider,
    UserTokenProvider,
    app_token_provider,
    forget_token_providers,
)
from .budget import RequestBudget
from .client import PartnerCenterClient, RequestStats, RetryPolicy
from .errors import (
    AuthenticationError,
    BadRequestError,
    CustomerNotFoundError,
    DeadlineExceeded,
    ForbiddenError,
    MalformedResponseError,
    PartnerCenterError,
    RelationshipEndedError,
    ThrottledError,
    TransientError,
)
from .models import AuditRecord, Customer, CustomerPage, MalformedItem, NextLink, is_guid

__all__ = [
    "AppTokenProvider", "RefreshTokenExpired", "RefreshTokenVault", "TokenProvider", "UserTokenProvider", "app_token_provider", "forget_token_providers",
    "RequestBudget", "PartnerCenterClient", "RequestStats", "RetryPolicy",
    "AuthenticationError", "BadRequestError", "CustomerNotFoundError", "DeadlineExceeded",
    "ForbiddenError", "MalformedResponseError", "PartnerCenterError", "RelationshipEndedError",
    "ThrottledError", "TransientError",
    "AuditRecord", "Customer", "CustomerPage", "MalformedItem", "NextLink", "is_guid",
]
