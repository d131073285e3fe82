"""Barbican's WSGI application for gunicorn. Barbican reads its
configuration at import from oslo's default places (~/.barbican/ first;
the start script points HOME at its state directory) and its paste
pipeline from a fixed /etc path, so the pipeline is loaded from
BARBICAN_PASTE here instead."""
import os

from paste import deploy

from barbican.api import app  # noqa: F401  (parses the configuration)

application = deploy.loadapp("config:" + os.environ["BARBICAN_PASTE"])
