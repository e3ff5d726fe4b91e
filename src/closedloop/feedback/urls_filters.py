"""Filter and view pages (``/feedback/<wid>/filters/…``, ``/feedback/<wid>/views/…``)."""

from django.urls import URLPattern, path

from closedloop.feedback import views_filters as v

urlpatterns: list[URLPattern] = [
    path("<int:wid>/filters/", v.filter_list, name="filter_list"),
    path("<int:wid>/filters/new/", v.filter_create, name="filter_create"),
    path("<int:wid>/filters/count/", v.filter_count, name="filter_count"),
    path("<int:wid>/filters/<int:fid>/", v.filter_edit, name="filter_edit"),
    path("<int:wid>/filters/<int:fid>/delete/", v.filter_delete, name="filter_delete"),
    path("<int:wid>/views/", v.view_list, name="view_list"),
    path("<int:wid>/views/new/", v.view_create, name="view_create"),
    path("<int:wid>/views/<int:vid>/edit/", v.view_edit, name="view_edit"),
    path("<int:wid>/views/<int:vid>/delete/", v.view_delete, name="view_delete"),
]
