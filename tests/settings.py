"""Settings for in-process tests: the site's, with a throw-away data folder."""

import os
import tempfile

os.environ["CONCIERGE_DATA_DIR"] = tempfile.mkdtemp(prefix="concierge-pytest-")
for _name in ("DATABASE_URL", "REDIS_URL", "FILESHARE_S3_BUCKET"):
    os.environ.pop(_name, None)

from concierge_site.settings import *  # noqa: E402,F403
