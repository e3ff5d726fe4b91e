from django.urls import path

from closedloop.accounts import lti

app_name = "lti"
urlpatterns = [
    path("launch/", lti.launch, name="launch"),
    path("home/", lti.learner, name="learner"),
]
