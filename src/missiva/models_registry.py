"""Imports every domain's tables so Base.metadata is complete (migrations, test schemas)."""

from missiva.audience import models as audience_models  # noqa: F401
from missiva.delivery import models as delivery_models  # noqa: F401
from missiva.delivery.sms import models as sms_models  # noqa: F401
from missiva.events import models as events_models  # noqa: F401
from missiva.inbound import models as inbound_models  # noqa: F401
from missiva.messages import models as messages_models  # noqa: F401
from missiva.reports import models as reports_models  # noqa: F401
from missiva.sync import models as sync_models  # noqa: F401
from missiva.tenancy import models as tenancy_models  # noqa: F401
