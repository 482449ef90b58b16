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
from crmkit.entities.contact import Contact, LifecycleStage
from crmkit.entities.deal import ContactRole, Deal
from crmkit.entities.history import StageChange
from crmkit.entities.interaction import Direction, Interaction, InteractionKind
from crmkit.entities.merge import MergeRecord
from crmkit.entities.pipeline import Pipeline, PipelineKind, Stage, StageKind, TransitionPolicy
from crmkit.entities.segment import Segment, SegmentKind
from crmkit.entities.task import Task, TaskStatus
from crmkit.entities.ticket import Channel, Ticket
from crmkit.entities.user import Role, Team, User

__all__ = [
    "ENTITY_TYPES",
    "Access",
    "Account",
    "Address",
    "Article",
    "ArticleStatus",
    "AuditAction",
    "AuditEntry",
    "Campaign",
    "CampaignChannel",
    "CampaignMember",
    "CampaignStatus",
    "Channel",
    "Contact",
    "ContactRole",
    "Deal",
    "Direction",
    "Entity",
    "FrozenDict",
    "Interaction",
    "InteractionKind",
    "LifecycleStage",
    "MemberStatus",
    "MergeRecord",
    "Money",
    "Pipeline",
    "PipelineKind",
    "Priority",
    "Role",
    "Segment",
    "SegmentKind",
    "Share",
    "Stage",
    "StageChange",
    "StageKind",
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
    )
}
