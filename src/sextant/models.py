"""Imports every control-plane model so Alembic and `create_all` see all tables."""

from sextant.accounts import models as accounts_models
from sextant.projects import models as projects_models

__all__ = ["accounts_models", "projects_models"]
