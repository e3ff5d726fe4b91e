"""Indicator pages."""

from django.urls import path

from closedloop.polls import views_indicators as v

urlpatterns = [
    path("indicators/", v.indicator_list, name="indicator_list"),
    path("indicators/new/", v.indicator_create, name="indicator_create"),
    path("indicators/questions/", v.indicator_questions, name="indicator_questions"),
    path("indicators/<int:pk>/", v.indicator_detail, name="indicator_detail"),
    path("indicators/<int:pk>/edit/", v.indicator_edit, name="indicator_edit"),
    path("indicators/<int:pk>/delete/", v.indicator_delete, name="indicator_delete"),
    path("indicators/<int:pk>/export.xlsx", v.indicator_export, name="indicator_export"),
    path("indicators/<int:pk>/sample/", v.sample_generate, name="indicator_sample"),
    path("indicators/<int:pk>/sample/clear/", v.sample_clear, name="indicator_sample_clear"),
    path("indicators/<int:pk>/sample/show/", v.sample_toggle, name="indicator_sample_toggle"),
]
