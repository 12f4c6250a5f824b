"""Send events to Sextant from Python: `Client` and the ASGI `SextantMiddleware`.

The browser tracker's source (`tracker.js`) lives here too; the server serves it at `/t.js`.
"""

from sextant.sdk.client import Client, DeliveryStats
from sextant.sdk.middleware import SextantMiddleware

__all__ = ["Client", "DeliveryStats", "SextantMiddleware"]
