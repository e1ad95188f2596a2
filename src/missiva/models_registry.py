"""Imports every domain's tables so Base.metadata is complete (migrations, test schemas)."""

from missiva.audience import models as audience_models  # noqa: F401
from missiva.sync import models as sync_models  # noqa: F401
from missiva.tenancy import models as tenancy_models  # noqa: F401
