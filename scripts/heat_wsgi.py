"""Heat's API as a WSGI application for gunicorn: oslo parses argv, so
argv names our configuration file before Heat builds its application."""
import os
import sys

sys.argv = ["heat-api", "--config-file", os.environ["HEAT_CONF"]]

from heat.api.openstack import wsgi  # noqa: E402

application = wsgi.init_application()
