from django.urls import include, path

from closedloop.api.urls import api
from closedloop.web.views import health

urlpatterns = [
    path("health/", health, name="health"),
    path("api/v1/", api.urls),
    path("accounts/", include("closedloop.accounts.urls")),
    path("registry/", include("closedloop.registry.urls")),
    path("people/", include("closedloop.people.urls")),
    path("jobs/", include("closedloop.jobs.urls")),
    path("feedback/", include("closedloop.feedback.urls")),
    path("polls/", include("closedloop.polls.urls")),
    path("trck/", include("closedloop.feedback.urls_tracking")),
    path("lti/", include("closedloop.accounts.urls_lti")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("closedloop.web.urls")),
]
