"""Keystone's WSGI application for gunicorn: oslo parses argv, so argv
names our configuration file before Keystone is imported."""
import os
import sys

sys.argv = ["keystone", "--config-file", os.environ["KEYSTONE_CONF"]]

from keystone.server.wsgi import initialize_public_application  # noqa: E402

application = initialize_public_application()
