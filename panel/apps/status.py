"""Where the sites of each application stand: how many sites each platform carries, and per
application its newest platform and how many sites lag behind it.  The API's
``/apps/status`` and the staff's Applications page show these same figures."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.apps.inventory import Summary, summary
from panel.apps.models import SiteApp

# One application across the provider: its newest platform, its sites on platforms and
# installed by hand, how many are behind (``panel.apps.inventory`` counts them).
AppStanding = Summary


def sites_per_platform(session: Session) -> dict[int, int]:
    """Platform id -> how many sites run on it (a platform no site uses is absent)."""
    rows = session.execute(select(SiteApp.platform_id, func.count()).group_by(SiteApp.platform_id))
    return {platform_id: count for platform_id, count in rows}


def standings(session: Session) -> list[AppStanding]:
    """Per application, by name (see ``panel.apps.inventory.Newest.behind`` for what
    "behind" means for a site on a platform and for one installed by hand)."""
    return summary(session)
