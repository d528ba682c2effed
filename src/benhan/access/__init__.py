"""Who may see what: roles, SMART scopes and the actor a request runs as (rules: store/policy)."""

from benhan.access.actor import Actor
from benhan.access.roles import ANONYMOUS, DIRECTORY, JOB, ROLES, Reach, Role, role
from benhan.access.scopes import Scope, ScopeError, Scopes

__all__ = [
    "ANONYMOUS",
    "DIRECTORY",
    "JOB",
    "ROLES",
    "Actor",
    "Reach",
    "Role",
    "Scope",
    "ScopeError",
    "Scopes",
    "role",
]
