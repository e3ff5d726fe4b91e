from django.urls import path

from closedloop.people import views

app_name = "people"

urlpatterns = [
    path("", views.person_list, name="list"),
    path("new/", views.person_create, name="create"),
    path("<int:pk>/", views.person_detail, name="detail"),
    path("<int:pk>/edit/", views.person_edit, name="edit"),
    path("<int:pk>/delete/", views.person_delete, name="delete"),
    path("cohorts/", views.cohort_list, name="cohorts"),
    path("fields/", views.custom_field_list, name="fields"),
    path("import/", views.import_upload, name="import"),
    path("import/<uuid:token>/", views.import_map, name="import_map"),
]
