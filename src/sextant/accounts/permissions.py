"""The role matrix: what each organisation role may do. Every endpoint checks it here."""

from __future__ import annotations

from enum import StrEnum

from sextant.accounts.models import Role


class Permission(StrEnum):
    VIEW = "view"  # see the organisation, its members and its projects
    READ_ANALYTICS = "read_analytics"  # run reports, read dashboards, use read endpoints
    MANAGE_KEYS = "manage_keys"  # list, create, revoke and rotate API keys
    MANAGE_PROJECTS = "manage_projects"  # create, rename, configure and delete projects
    MANAGE_MEMBERS = "manage_members"  # add, re-role and remove admins, members and viewers
    MANAGE_OWNERS = "manage_owners"  # grant, change or remove the owner role
    MANAGE_ORG = "manage_org"  # rename the organisation
    DELETE_ORG = "delete_org"  # delete the organisation with all its projects


_VIEWER = frozenset({Permission.VIEW, Permission.READ_ANALYTICS})
_MEMBER = _VIEWER | {Permission.MANAGE_KEYS}
_ADMIN = _MEMBER | {Permission.MANAGE_PROJECTS, Permission.MANAGE_MEMBERS, Permission.MANAGE_ORG}
_OWNER = _ADMIN | {Permission.MANAGE_OWNERS, Permission.DELETE_ORG}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.MEMBER: _MEMBER,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _OWNER,
}

_DESCRIPTIONS = {
    Permission.VIEW: "view this organisation",
    Permission.READ_ANALYTICS: "read analytics",
    Permission.MANAGE_KEYS: "manage API keys",
    Permission.MANAGE_PROJECTS: "manage projects",
    Permission.MANAGE_MEMBERS: "manage members",
    Permission.MANAGE_OWNERS: "grant or remove the owner role",
    Permission.MANAGE_ORG: "change the organisation",
    Permission.DELETE_ORG: "delete the organisation",
}


def can(role: str | Role, permission: Permission) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def describe(permission: Permission) -> str:
    return _DESCRIPTIONS[permission]
