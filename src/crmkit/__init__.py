"""crmkit: a complete CRM domain to embed in Python applications.

>>> import crmkit
>>> crm = crmkit.connect("memory://")
>>> ada = crm.contacts.add(crmkit.Contact(first_name="Ada", emails=["ada@example.com"]))
>>> ada.version
1
"""

from __future__ import annotations

from crmkit.crm import CRM, connect
from crmkit.entities import (
    Account,
    Address,
    Article,
    Campaign,
    CampaignMember,
    Contact,
    Deal,
    Entity,
    Interaction,
    Money,
    Order,
    OrderLine,
    Pipeline,
    Role,
    Segment,
    Stage,
    SurveyResponse,
    Task,
    Team,
    Ticket,
    User,
)
from crmkit.errors import (
    BackendError,
    ConflictError,
    CRMError,
    NotFound,
    PermissionDenied,
    Suppressed,
    TransitionError,
    ValidationError,
)
from crmkit.query import F

__all__ = [
    "CRM",
    "Account",
    "Address",
    "Article",
    "BackendError",
    "CRMError",
    "Campaign",
    "CampaignMember",
    "ConflictError",
    "Contact",
    "Deal",
    "Entity",
    "F",
    "Interaction",
    "Money",
    "NotFound",
    "Order",
    "OrderLine",
    "PermissionDenied",
    "Pipeline",
    "Role",
    "Segment",
    "Stage",
    "Suppressed",
    "SurveyResponse",
    "Task",
    "Team",
    "Ticket",
    "TransitionError",
    "User",
    "ValidationError",
    "connect",
]

__version__ = "0.1.0"
