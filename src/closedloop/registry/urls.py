from django.urls import path

from closedloop.registry import views

app_name = "registry"

urlpatterns = [
    path("", views.tree, name="tree"),
    path("search/", views.search, name="search"),
    path("pick/", views.parent_options, name="parent_options"),
    path("new/", views.create, name="create"),
    path("map/", views.subtree_map, name="map"),
    path("map/data/", views.map_data, name="map_data"),
    path("export/", views.export, name="export"),
    path("import/", views.import_upload, name="import"),
    path("import/<uuid:token>/", views.import_mapping, name="import_mapping"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/children/", views.children, name="children"),
    path("<int:pk>/edit/", views.edit, name="edit"),
    path("<int:pk>/move/", views.move, name="move"),
    path("<int:pk>/delete/", views.delete, name="delete"),
]
