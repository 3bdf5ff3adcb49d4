"""The admin app with the project's site (accounts.admin_site: a throttled, audited login).

Its own module: an AppConfig named in INSTALLED_APPS is imported before any model is
loaded, and the site it names is imported only when `admin.site` is first used.
"""

from django.contrib.admin.apps import AdminConfig


class ScoreboardAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.ScoreboardAdminSite"
