"""semroute: a semantic LLM routing microservice.

litellm fetches its model cost map from the internet at import unless told otherwise; a
router must start offline, so the local copy is the default before anything imports it.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"
