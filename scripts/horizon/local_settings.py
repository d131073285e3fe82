# Horizon's local settings for scripts/horizon.sh: the dashboard of the
# local test Keystone, served by Django's development server on loopback.
# Values come from the environment the script sets.
import os

DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECRET_KEY = os.environ["MAGNUM_HORIZON_SECRET"]
OPENSTACK_KEYSTONE_URL = os.environ["MAGNUM_HORIZON_KEYSTONE"]
OPENSTACK_KEYSTONE_DEFAULT_ROLE = "member"
OPENSTACK_SSL_NO_VERIFY = True
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STATIC_ROOT = os.path.join(os.environ["MAGNUM_HORIZON_STATE"], "static")
MEDIA_ROOT = os.path.join(os.environ["MAGNUM_HORIZON_STATE"], "media")
# No Cinder, Swift or Octavia here: the panels that need them would fail.
OPENSTACK_HYPERVISOR_FEATURES = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
