"""crmkit's entities: immutable attrs classes, one module per aggregate."""

from __future__ import annotations

from crmkit.entities._base import Address, Entity, Money, Priority
from crmkit.entities._fields import FrozenDict
from crmkit.entities.access import Access, AuditAction, AuditEntry, Share
from crmkit.entities.account import Account
from crmkit.entities.article import Article, ArticleStatus
from crmkit.entities.campaign import (
    Campaign,
    CampaignChannel,
    CampaignMember,
    CampaignStatus,
    MemberStatus,
)
from crmkit.entities.contact import Consent, Contact, LawfulBasis, LifecycleStage
from crmkit.entities.customfield import FieldDefinition, FieldType
from crmkit.entities.deal import ContactRole, Deal
from crmkit.entities.history import StageChange
from crmkit.entities.interaction import (
    Attachment,
    Direction,
    Interaction,
    InteractionKind,
    Participant,
    ParticipantRole,
)
from crmkit.entities.merge import MergeRecord
from crmkit.entities.order import COUNTED_STATUSES, Order, OrderLine, OrderStatus
from crmkit.entities.pipeline import Pipeline, PipelineKind, Stage, StageKind, TransitionPolicy
from crmkit.entities.relationship import (
    AccountContact,
    AccountRole,
    Suppression,
    SuppressionKind,
)
from crmkit.entities.scoring import ScoringModel
from crmkit.entities.segment import Segment, SegmentKind
from crmkit.entities.survey import SurveyKind, SurveyResponse
from crmkit.entities.task import Task, TaskStatus
from crmkit.entities.ticket import Channel, Ticket
from crmkit.entities.user import Role, Team, User

__all__ = [
    "COUNTED_STATUSES",
    "ENTITY_TYPES",
    "Access",
    "Account",
    "AccountContact",
    "AccountRole",
    "Address",
    "Article",
    "ArticleStatus",
    "Attachment",
    "AuditAction",
    "AuditEntry",
    "Campaign",
    "CampaignChannel",
    "CampaignMember",
    "CampaignStatus",
    "Channel",
    "Consent",
    "Contact",
    "ContactRole",
    "Deal",
    "Direction",
    "Entity",
    "FieldDefinition",
    "FieldType",
    "FrozenDict",
    "Interaction",
    "InteractionKind",
    "LawfulBasis",
    "LifecycleStage",
    "MemberStatus",
    "MergeRecord",
    "Money",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Participant",
    "ParticipantRole",
    "Pipeline",
    "PipelineKind",
    "Priority",
    "Role",
    "ScoringModel",
    "Segment",
    "SegmentKind",
    "Share",
    "Stage",
    "StageChange",
    "StageKind",
    "Suppression",
    "SuppressionKind",
    "SurveyKind",
    "SurveyResponse",
    "Task",
    "TaskStatus",
    "Team",
    "Ticket",
    "TransitionPolicy",
    "User",
]

#: Every stored entity type by collection name, in dependency order (referenced types first).
ENTITY_TYPES: dict[str, type[Entity]] = {
    cls.collection: cls
    for cls in (
        User,
        Team,
        Role,
        Account,
        Contact,
        Pipeline,
        Deal,
        Ticket,
        Interaction,
        Task,
        Segment,
        Campaign,
        CampaignMember,
        Article,
        Share,
        AuditEntry,
        MergeRecord,
        StageChange,
        ScoringModel,
        AccountContact,
        Suppression,
        FieldDefinition,
        Order,
        SurveyResponse,
    )
}
